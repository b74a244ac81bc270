"""The synthetic driving world: scene layout, textures, rendering with exact labels and flow."""

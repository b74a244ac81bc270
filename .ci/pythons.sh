#!/usr/bin/env bash
# Install the Pythons of the active ROS 2 distributions that can be had here, for
# test/test_pythons.py. This machine (Debian bookworm) has only Python 3.11, and no registry
# reachable from it ships a native CPython 3.10 (Humble) or 3.12 (Jazzy, Kilted): Debian has
# 3.11 (bookworm), 3.13 (trixie), 3.14 and 3.15 (sid), Ubuntu's archive is out of reach, and
# the PyPI and npm installers of prebuilt CPython download it from GitHub. So:
#   - 3.10 and 3.12: CPython compiled to WebAssembly (Pyodide, from the npm registry), run by
#     Node.js: it byte-compiles the package; it cannot load numpy or torch from here;
#   - 3.14 (Lyrical, Ubuntu 26.04): Debian sid, whose python3 is 3.14, in a debootstrap chroot,
#     with Debian's torch and what else the ROS-free tests import.
#
#   usage: pythons.sh DEST        e.g. .ci/pythons.sh ~/.cache/stkd_ros/pythons
#
# Needs root (debootstrap, chroot). Idempotent: a second run with the same pins returns at once.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:?usage: $0 DEST}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)

# Pyodide 0.22.1 is CPython 3.10.2; 0.27.7 is CPython 3.12.7.
pyodide=(py310@npm:pyodide@0.22.1 py312@npm:pyodide@0.27.7)
if [ "$(cat "$dest/pyodide/.stamp" 2>/dev/null)" != "${pyodide[*]}" ]; then
  rm -rf "$dest/pyodide"
  mkdir -p "$dest/pyodide"
  npm install --silent --no-audit --no-fund --prefix "$dest/pyodide" "${pyodide[@]}"
  echo "${pyodide[*]}" > "$dest/pyodide/.stamp"
fi

# Debian sid with python3.14 as its python3: what package.xml's apt keys name, from Debian (its
# python3-torch is the distribution's own build, as rosdep installs it on Ubuntu), and a venv
# over them with requirements.txt's pins of what comes from pip on a ROS machine.
root=$dest/debian-sid
apt_packages="python3.14 python3-venv python3-numpy python3-opencv python3-yaml python3-torch
  python3-torchvision python3-matplotlib python3-tqdm"
pins=$(grep -E '^(timm|onnxruntime|openvino|rosbags|tensorboard|safetensors|onnx|cityscapesscripts)==' \
       "$here/requirements.txt"; grep -E '^pytest==' "$here/requirements-dev.txt")
want=$(echo "$apt_packages setuptools $pins" | sha256sum | cut -c1-16)
if [ "$(cat "$root/.stamp" 2>/dev/null)" != "$want" ]; then
  command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap; }
  rm -rf "$root"
  log=$dest/debian-sid.log
  echo "pythons.sh: Debian sid with python3.14 and torch (a few minutes, about 4 GB)"
  in_root() { chroot "$root" env -i HOME=/tmp PATH=/usr/sbin:/usr/bin:/sbin:/bin \
                DEBIAN_FRONTEND=noninteractive "$@" >>"$log" 2>&1; }
  # The mirror here serves sid as of a fixed date: its Release file's validity has lapsed.
  { debootstrap --variant=minbase sid "$root" http://deb.debian.org/debian >"$log" 2>&1 \
    && in_root apt-get -o Acquire::Check-Valid-Until=false update \
    && in_root apt-get install -y --no-install-recommends $apt_packages \
    && in_root apt-get clean; } \
    || { tail -n 20 "$log" >&2; echo "pythons.sh: Debian sid failed ($log)" >&2; exit 1; }
  mkdir -p "$root/src"
  # pip in the chroot trusts what pip here trusts (this network's certificate authority).
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/pip-ca.crt"
  # shellcheck disable=SC2086
  in_root python3 -m venv --system-site-packages /opt/venv \
    && in_root /opt/venv/bin/python -m pip install --disable-pip-version-check \
         --cert /etc/pip-ca.crt setuptools $pins \
    || { tail -n 20 "$log" >&2; echo "pythons.sh: pip in Debian sid failed ($log)" >&2; exit 1; }
  echo "$want" > "$root/.stamp"
fi
echo "pythons.sh: Pyodide $(cd "$dest/pyodide/node_modules" && echo py3*) and" \
     "$(chroot "$root" /opt/venv/bin/python --version) (Debian sid) in $dest"

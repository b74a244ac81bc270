"""
The `stkd` subcommands that are not training: synth, export, eval-bag, demo (and replay).

``cli.py`` parses arguments and calls one function here; the training commands
(train-teacher, train-student, distill, evaluate) live in ``stkd_ros.training.commands``.
"""

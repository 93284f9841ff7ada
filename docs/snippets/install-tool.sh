# from a checkout (or name a built wheel instead of '.'): the command on your PATH,
# in an environment of its own
pipx install '.[speed]'
# or, with uv
uv tool install '.[speed]'

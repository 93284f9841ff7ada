# from a checkout of the repository: a virtual environment with the speed extra (uvloop)
python3 -m venv .venv && .venv/bin/pip install -e '.[speed]'

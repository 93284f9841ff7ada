.venv/bin/python bench/run.py --quick       # ~50 s, 2 s per scenario

.venv/bin/pip install -e '.[test,docs,examples,clients]'
.venv/bin/pytest            # unit, integration (real upstream on loopback) and CLI tests
.venv/bin/ruff check . && .venv/bin/mypy
.venv/bin/mkdocs serve      # this site, rebuilt as you edit docs/ (http://127.0.0.1:8000)
bash .ci/run                # what CI runs on a fresh clone

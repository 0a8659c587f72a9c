"""``python -m schemas``: regenerate the published JSON Schemas from the models."""

from __future__ import annotations

from schemas import write_schemas

if __name__ == "__main__":
    for path in write_schemas():
        print(path)

"""Shared by the corpus tests: the hand-written MSP-Podcast corpus builder beside this file."""

import sys
from pathlib import Path

# importlib import mode puts no test folder on sys.path; the builder module sits beside this file.
sys.path.insert(0, str(Path(__file__).parent))

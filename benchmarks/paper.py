"""The paper's claims measured on Fashion-MNIST: one resumable command, verdicts computed from the numbers.

    PYTHONPATH=src python benchmarks/paper.py --claims all --seeds 0,1,2     # the full suite (hours)
    PYTHONPATH=src python benchmarks/paper.py --claims t1,fig5 --seeds 0      # some claims
    PYTHONPATH=src python benchmarks/paper.py --quick                         # every path in a minute
    PYTHONPATH=src python benchmarks/paper.py --select                        # the hyper-parameter selection

See benchmarks/paper_suite/ (protocol.py: the shared protocol; claims.py: what each claim trains and
how its verdict is computed) and the report it writes, benchmarks/results/paper.md.
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from paper_suite.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())

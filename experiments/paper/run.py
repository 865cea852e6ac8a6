"""The paper's claims measured on Fashion-MNIST: one resumable command, verdicts computed from the numbers.

    python experiments/paper/run.py --claims all --seeds 0,1,2     # the full suite (hours)
    python experiments/paper/run.py --claims t1,fig5 --seeds 0      # some claims
    python experiments/paper/run.py --quick                         # every path, tiny network and steps
    python experiments/paper/run.py --select                        # the hyper-parameter selection

See experiments/paper/README.md, the suite in experiments/paper/suite/ (protocol.py: the shared protocol;
claims.py: what each claim trains and how its verdict is computed) and the report it writes,
experiments/paper/results/report.md.
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent.parent / "src"))  # the library, when it is not installed

from suite.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())

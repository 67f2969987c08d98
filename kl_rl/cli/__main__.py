import sys

from kl_rl.cli import main

sys.exit(main())

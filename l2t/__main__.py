import sys

from l2t.cli import main

sys.exit(main())

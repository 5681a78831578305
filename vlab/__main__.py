import sys

from vlab.cli.main import main

sys.exit(main())

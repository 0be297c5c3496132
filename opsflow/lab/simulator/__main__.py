"""``python -m opsflow.lab.simulator DEVICES.yaml STATE_DIR``"""

from opsflow.lab.simulator.server import main

raise SystemExit(main())

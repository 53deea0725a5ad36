import sys

from enrichment_pipeline.instance import main

sys.exit(main())

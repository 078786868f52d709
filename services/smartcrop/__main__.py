from smartcrop.cli import main

raise SystemExit(main())

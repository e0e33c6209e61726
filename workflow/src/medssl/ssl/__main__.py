import sys

from medssl.ssl.launch import main

sys.exit(main())

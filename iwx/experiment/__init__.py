"""Recording: gin capture, Sacred experiments and observers, the MongoDB mirror."""

import warnings

# sacred 0.8.7 imports pkg_resources (setuptools < 81 is pinned for it); its
# deprecation notice says nothing the user can act on.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")

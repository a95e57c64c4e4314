"""The web UI: the playground (``/``) and the live dashboard (``/dashboard``).

The front end's sources are in ``src/`` and are bundled by ``build.mjs`` (esbuild)
into ``static/``, which is committed and shipped as package data: a fresh clone
installs working pages with ``pip install .``, without Node or any network.
``bundle.py`` tells whether ``static/`` was built from the sources as they are;
``pages.py`` serves it.
"""

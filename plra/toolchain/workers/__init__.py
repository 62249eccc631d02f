"""Entry points that run inside an env other than the caller's (`python -m plra.toolchain.workers.<name>`).

They import only the standard library and what their env holds, never plra's main-env modules.
"""

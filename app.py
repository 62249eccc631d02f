"""PLRA's Gradio app (the OpenXLab entry point): `python app.py`; the port comes from GRADIO_SERVER_PORT or PORT."""

from plra.app import main

if __name__ == "__main__":
    main()

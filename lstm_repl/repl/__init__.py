"""The interactive shell: pure views of one model step (views.py, which puts together
units_view.py, strip_view.py and drawing.py on the layout kit in layout.py) and their conversion
to prompt_toolkit fragments (fragments.py); views take plain numbers and never import torch."""

"""The interactive shell: pure views of one model step (views.py) and their conversion to
prompt_toolkit fragments (fragments.py); views take plain numbers and never import torch."""

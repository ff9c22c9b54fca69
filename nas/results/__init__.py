"""What a user takes away: the comparison table and plot (`compare`), the one-page HTML
report (`report`), cell drawings (`diagram`) and the stand-alone exported module (`export`).

Docstring only, so that importing one does not load the others.
"""

"""Hong & Ling 2023. Claims filled in below."""
NAME = 'hong2023'
TITLE = 'Hong & Ling 2023, UFM under cross-entropy with imbalanced data'
CITATION = ('Hong, Ling, *Neural Collapse for Unconstrained Feature Model under Cross-entropy Loss with '
            'Imbalanced Data*, 2023')
GRIDS = ['hong_block', 'hong_minority', 'hong_limit']
NOTES = []
CLAIMS = []

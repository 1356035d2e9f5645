"""Dang et al. 2024 (cross-entropy, imbalanced, unconstrained ReLU features). Claims filled in below."""
NAME = 'dang2024'
TITLE = 'Dang et al. 2024, cross-entropy imbalanced collapse with ReLU features'
CITATION = ('Dang, Tran, Nguyen, Ho, *Neural Collapse for Cross-entropy Class-Imbalanced Learning with '
            'Unconstrained ReLU Features Model*, ICML 2024')
GRIDS = ['d24_imbalanced']
NOTES = []
CLAIMS = []

"""Black-box (score-only) attacks and their parts.

- `query_model`: `QueryModel`, the query-only, query-counting view of the target model;
- `tentative`: tentative perturbations (transferred from image surrogates, static, random signs);
- `partitions`: which NES coefficient each pixel follows (uniform patches, random groups, pixels);
- `nes`: NES estimation of the gradient with respect to those coefficients (rank transform);
- `vbad`: the V-BAD loop and its baselines P-BAD and SR-BAD (registered attacks).

Only `QueryModel` is imported here: the template (`attacks.base`) needs it, and importing the attacks
from this package's `__init__` would import the template back while it is being defined.
"""

from vidattack.attacks.blackbox.query_model import QueryModel

__all__ = ["QueryModel"]

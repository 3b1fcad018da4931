"""The routing policy: config/routing.yaml as a typed, cross-checked, immutable object."""
from ari_app.policy.loader import cross_check, load_policy, parse_policy
from ari_app.policy.models import Policy, Ref, RefKind

__all__ = ["Policy", "Ref", "RefKind", "cross_check", "load_policy", "parse_policy"]

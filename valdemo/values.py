"""Value systems as data: Schwartz's basic values, Moral Foundations, SVO orientations.

Definitions are written for this project (paraphrasing the published
theories: Schwartz 1992/2012; Haidt & Graham's Moral Foundations Theory;
Murphy, Ackermann & Handgraaf 2011 for the SVO slider measure).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Value:
    key: str  # upper-case identifier, as ValueNet file names use (e.g. "ACHIEVEMENT")
    name: str  # display name
    definition: str
    examples: tuple[str, ...] = ()


SCHWARTZ: tuple[Value, ...] = (
    Value("SELF-DIRECTION", "Self-direction",
          "Independent thought and action: choosing one's own goals, creating, exploring.",
          ("freedom", "creativity", "curiosity", "choosing own goals")),
    Value("STIMULATION", "Stimulation",
          "Excitement, novelty and challenge in life.",
          ("daring", "a varied life", "an exciting life")),
    Value("HEDONISM", "Hedonism",
          "Pleasure and sensuous gratification for oneself.",
          ("pleasure", "enjoying life", "self-indulgence")),
    Value("ACHIEVEMENT", "Achievement",
          "Personal success through demonstrating competence according to social standards.",
          ("ambition", "success", "capability", "influence")),
    Value("POWER", "Power",
          "Social status and prestige, control or dominance over people and resources.",
          ("authority", "wealth", "social power", "public image")),
    Value("SECURITY", "Security",
          "Safety, harmony and stability of society, of relationships, and of self.",
          ("family security", "national security", "social order", "cleanliness")),
    Value("CONFORMITY", "Conformity",
          "Restraint of actions, inclinations and impulses likely to upset or harm others "
          "and violate social expectations or norms.",
          ("obedience", "politeness", "self-discipline", "honouring elders")),
    Value("TRADITION", "Tradition",
          "Respect for, commitment to and acceptance of the customs and ideas that one's "
          "culture or religion provides.",
          ("humility", "devoutness", "accepting one's portion in life")),
    Value("BENEVOLENCE", "Benevolence",
          "Preserving and enhancing the welfare of those with whom one is in frequent "
          "personal contact (the in-group).",
          ("helpfulness", "honesty", "forgiveness", "loyalty", "responsibility")),
    Value("UNIVERSALISM", "Universalism",
          "Understanding, appreciation, tolerance and protection for the welfare of all "
          "people and of nature.",
          ("broad-mindedness", "social justice", "equality", "protecting the environment")),
)

SCHWARTZ_KEYS: tuple[str, ...] = tuple(v.key for v in SCHWARTZ)

MORAL_FOUNDATIONS: tuple[Value, ...] = (
    Value("CARE", "Care / harm",
          "Caring for others and protecting them from harm; kindness, gentleness, nurturance.",
          ("compassion", "not hurting the vulnerable")),
    Value("FAIRNESS", "Fairness / cheating",
          "Justice, rights and reciprocity; not cheating or exploiting others.",
          ("honesty in exchange", "equal treatment", "keeping one's word")),
    Value("LOYALTY", "Loyalty / betrayal",
          "Standing with one's group, family or nation; not betraying them.",
          ("patriotism", "self-sacrifice for the group", "keeping secrets of friends")),
    Value("AUTHORITY", "Authority / subversion",
          "Respect for legitimate leadership, traditions and social order.",
          ("obedience to rules", "deference to parents and elders")),
    Value("SANCTITY", "Sanctity / degradation",
          "Living in an elevated, noble way; avoiding what is disgusting, degrading or "
          "contaminating for body and spirit.",
          ("purity", "self-respect", "not desecrating what others hold sacred")),
)

FOUNDATION_KEYS: tuple[str, ...] = tuple(v.key for v in MORAL_FOUNDATIONS)


@dataclass(frozen=True)
class Orientation:
    key: str
    name: str
    description: str  # used to induce the orientation in a model
    low: float  # category bounds on the SVO angle, degrees: (low, high]
    high: float


SVO_ORIENTATIONS: tuple[Orientation, ...] = (
    Orientation("altruistic", "Altruistic",
                "You care only about the other person's outcome. You want the other person "
                "to receive as much as possible, regardless of what you receive yourself.",
                57.15, 90.0),
    Orientation("prosocial", "Prosocial",
                "You want to maximise the joint outcome of you and the other person and keep "
                "the split between you fair; you value equality and shared gain.",
                22.45, 57.15),
    Orientation("individualistic", "Individualistic",
                "You care only about your own outcome. You want as much as possible for "
                "yourself and are indifferent to what the other person receives.",
                -12.04, 22.45),
    Orientation("competitive", "Competitive",
                "You want to do better than the other person. You want to maximise the "
                "difference between what you receive and what the other person receives.",
                -90.0, -12.04),
)

ORIENTATION_KEYS: tuple[str, ...] = tuple(o.key for o in SVO_ORIENTATIONS)

_ALL = {v.key: v for v in SCHWARTZ + MORAL_FOUNDATIONS}


def normalise_value_key(name: str) -> str:
    """Map user spellings ("self direction", "Self-Direction", "benevolence") to a key."""
    raw = name.strip().upper().replace("_", "-").replace(" ", "-")
    if raw == "SELFDIRECTION":
        raw = "SELF-DIRECTION"
    return raw


def get_value(name: str) -> Value:
    """A Schwartz value or moral foundation by key or display name; KeyError if unknown."""
    key = normalise_value_key(name)
    if key in _ALL:
        return _ALL[key]
    for v in _ALL.values():
        if v.name.upper() == name.strip().upper():
            return v
    raise KeyError(f"unknown value {name!r}; known: {', '.join(_ALL)}")


def get_orientation(name: str) -> Orientation:
    key = name.strip().lower()
    for o in SVO_ORIENTATIONS:
        if o.key == key:
            return o
    raise KeyError(f"unknown orientation {name!r}; known: {', '.join(ORIENTATION_KEYS)}")

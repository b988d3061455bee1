"""Short, simple English sentences for toy speech, from a few hundred common words.

Every sentence is lowercase and uses only the characters of `VOCAB`."""
from __future__ import annotations

import numpy as np

VOCAB = " abcdefghijklmnopqrstuvwxyz',.?!-"

_ANIMALS = "dog cat bird horse cow pig duck rabbit goat frog bear lion tiger monkey zebra snake owl kitten puppy " \
           "mouse sheep fox wolf fish"
_PEOPLE = "boy girl man woman baby teacher doctor farmer friend king queen child cook driver pilot nurse " \
          "student neighbor"
_NAMES = "tom anna max lucy sam jack mia ben zoe kate leo emma jake olivia noah ruby"
_FAMILY = "mom dad sister brother grandma grandpa uncle aunt"
_THINGS = "ball book box hat cup car bike kite key bag bed chair table door window clock lamp phone letter " \
          "picture toy shoe coat shirt jacket umbrella ring map ticket boat train bus truck drum guitar piano " \
          "blanket pillow jar bottle basket candle puzzle quilt vase whistle zipper backpack watch glass brush " \
          "wagon box-kite"
_FOOD = "apple banana cake cookie egg orange sandwich pizza lemon peach pear carrot pie muffin"
_MASS_FOOD = "bread cheese soup rice honey jam ice-cream popcorn"
_DRINKS = "milk tea juice water lemonade cocoa"
_PLACES = "park house school garden beach shop zoo lake river forest farm city kitchen library market station " \
          "hill bridge village playground museum office yard"
_PLACE_ADJECTIVES = "big small old new quiet busy nice little lovely sunny crowded empty"
_SIZES = "big small little tiny huge tall long short"
_COLOURS = "red blue green yellow black white brown pink purple orange gray"
_QUALITIES = "old new happy sad funny quiet loud warm cold soft clean dirty fast slow nice good pretty lazy busy " \
             "hungry sleepy brave kind clever strange lovely fresh sweet shiny well-known brand-new old-fashioned"
_FEELINGS = "happy sad tired hungry sleepy busy ready cold late excited bored sick lucky"
# verbs as base or base:past (regular pasts are derived); _DOUBLE ones double the last consonant
_INTRANSITIVE = "run:ran walk jump sleep:slept sing:sang dance swim:swam smile laugh wait play cry sit:sat rest " \
                "stop shout climb hide:hid fall:fell work listen talk hop skip clap jog"
_MOTION = "run:ran walk go:went come:came drive:drove hurry ride:rode swim:swam fly:flew jog hop"
_TRANSITIVE = "see:saw like want find:found buy:bought take:took bring:brought need hold:held make:made carry " \
              "open close paint wash fix catch:caught throw:threw drop hide:hid draw:drew love pack keep:kept " \
              "lose:lost sell:sold"
_ANIMAL_TRANSITIVE = "see:saw like want find:found chase catch:caught hide:hid lose:lost"
_ASKED = "see find take bring buy open close fix wash paint carry hold draw make catch"
_DOUBLE = set("run swim sit stop hop skip clap jog drop".split())
_TIMES_NOW = "today,now,every day,every morning,at night,in the morning,after lunch,on sunday,all day,again"
_TIMES_PAST = "yesterday,last night,this morning,on monday,an hour ago,last week,just now"
_TIMES_FUTURE = "tomorrow,tonight,later,soon,next week,on friday,after school"
_MANNER = "quickly slowly quietly happily carefully together alone outside"
_IRREGULAR_PLURAL = {"mouse": "mice", "sheep": "sheep", "fish": "fish", "wolf": "wolves", "child": "children",
                     "man": "men", "woman": "women"}
_THERE = ["there's", "there is", "there was"]
_CONTRACTED_BE = {"i": "i'm", "you": "you're", "we": "we're", "they": "they're", "he": "he's", "she": "she's"}
_GREETINGS = ["hello, how are you?", "good morning, mom!", "see you soon!", "thank you very much.",
              "good night, sleep well.", "yes, i can.", "no, thank you.", "well, maybe later.", "okay, let's go!",
              "sure, why not?", "what a lovely day!", "watch out!", "excuse me, please.", "oh, i see.",
              "wow, that's amazing!", "hi there!", "not today.", "hurry up, we're late!", "just a minute, please.",
              "that's a great idea!", "i don't know.", "where are you going?", "come back soon!"]


def _verb(entry: str) -> tuple[str, str]:
    base, _, past = entry.partition(":")
    return base, past or _regular_past(base)


def _regular_past(base: str) -> str:
    if base.endswith("e"):
        return base + "d"
    if base.endswith("y") and base[-2] not in "aeiou":
        return base[:-1] + "ied"
    return base + (base[-1] if base in _DOUBLE else "") + "ed"


def _third(base: str) -> str:
    if base == "have":
        return "has"
    if base.endswith(("s", "x", "ch", "sh", "o")):
        return base + "es"
    if base.endswith("y") and base[-2] not in "aeiou":
        return base[:-1] + "ies"
    return base + "s"


def _ing(base: str) -> str:
    if base in _DOUBLE:
        return base + base[-1] + "ing"
    if base.endswith("e") and not base.endswith("ee"):
        return base[:-1] + "ing"
    return base + "ing"


def _be(subject: str, plural: bool) -> str:
    return "am" if subject == "i" else "are" if plural else "is"


def _article(head: str) -> str:
    return "an" if head[0] in "aeiou" else "a"


def _plural(noun: str) -> str:
    if noun in _IRREGULAR_PLURAL:
        return _IRREGULAR_PLURAL[noun]
    return _third(noun) if noun[-1] in "sxhy" else noun + "s"


class _Maker:
    """Draws the parts of one sentence from a numpy Generator."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def pick(self, options):
        """One of a list, or of a string's comma-separated phrases (space-separated words if no comma)."""
        if isinstance(options, str):
            options = options.split(",") if "," in options else options.split()
        return options[int(self.rng.integers(len(options)))]

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def adjectives(self) -> str:
        kind = self.rng.random()
        if kind < 0.45:
            return ""
        if kind < 0.85:
            return self.pick(self.pick([_SIZES, _COLOURS, _QUALITIES]))
        return f"{self.pick(self.pick([_SIZES, _QUALITIES]))} {self.pick(_COLOURS)}"

    def determiner(self, head: str, plural: bool) -> str:
        if plural:
            return self.pick("the,my,your,our,their,these,those,some,two,three")
        article = _article(head)
        return self.pick(f"the,my,your,his,her,our,this,that,{article},{article}")

    def bare_noun(self, nouns: str, plural: bool) -> str:
        """A noun with optional adjectives and no determiner."""
        noun = self.pick(nouns)
        adj = self.adjectives()
        return (f"{adj} " if adj else "") + (_plural(noun) if plural else noun)

    def noun_phrase(self, nouns: str, plural: bool | None = None, possessor: bool = True) -> tuple[str, bool]:
        """A noun phrase and whether it is plural."""
        plural = self.chance(0.25) if plural is None else plural
        head = self.bare_noun(nouns, plural)
        if possessor and not plural and self.chance(0.12):
            return f"{self.pick(_NAMES)}'s {head}", False
        return f"{self.determiner(head, plural)} {head}", plural

    def subject(self, pronouns: bool = True) -> tuple[str, bool, bool]:
        """(words, takes the plural verb form, is an animal)."""
        roll = self.rng.random()
        if pronouns and roll < 0.3:
            pronoun = self.pick("i you we they he she")
            return pronoun, pronoun in ("i", "you", "we", "they"), False
        if roll < 0.45:
            return self.pick(_NAMES), False, False
        if roll < 0.55:
            return f"{self.pick('my,your,our,his,her')} {self.pick(_FAMILY)}", False, False
        animal = self.chance(0.5)
        words, plural = self.noun_phrase(_ANIMALS if animal else _PEOPLE)
        return words, plural, animal

    def obj(self, verb: str, animal: bool) -> str:
        if verb == "eat":
            if self.chance(0.6):
                return self.noun_phrase(_FOOD)[0]
            return f"{self.pick('some,the,my,her')} {self.pick(_MASS_FOOD)}"
        if verb == "drink":
            return f"{self.pick('some,the,my,his,warm,cold')} {self.pick(_DRINKS)}"
        return self.noun_phrase(_ANIMALS if animal and self.chance(0.5) else _THINGS)[0]

    def place(self, prep: str = "in,at,near,behind,by") -> str:
        if self.chance(0.1):
            return self.pick("home,to school") if prep.startswith("to") else self.pick("at home,at school")
        adj = self.pick(_PLACE_ADJECTIVES) + " " if self.chance(0.4) else ""
        det = self.pick("the,the,a,my,our,that")
        noun = f"{adj}{self.pick(_PLACES)}"
        return f"{self.pick(prep)} {_article(noun) if det == 'a' else det} {noun}"

    def tail(self, tense: str, with_place: bool = True) -> str:
        parts = []
        if with_place and self.chance(0.4):
            parts.append(self.place())
        if self.chance(0.15):
            parts.append(self.pick(_MANNER))
        if self.chance(0.35):
            parts.append(self.pick({"now": _TIMES_NOW, "past": _TIMES_PAST, "future": _TIMES_FUTURE}[tense]))
        return " ".join(parts)

    def predicate(self, subject: str, plural: bool, animal: bool, tense: str) -> str:
        """Verb phrase in the given tense ('now', 'past', 'future', 'progressive', 'negative')."""
        roll = self.rng.random()
        if roll < 0.35:
            base, past = _verb(self.pick(_INTRANSITIVE))
            rest = ""
        elif roll < 0.55:
            base, past = _verb(self.pick(_MOTION))
            rest = self.place("to,to,to,into,across,around" if self.chance(0.7) else "in,at,near")
        else:
            verb = self.pick("eat:ate,drink:drank" if self.chance(0.2) else
                             (_ANIMAL_TRANSITIVE if animal else _TRANSITIVE).split())
            base, past = _verb(verb)
            rest = self.obj(base, animal)
        if tense == "past":
            verb_words = past
        elif tense == "future":
            verb_words = f"will {base}"
        elif tense == "progressive":
            verb_words = f"{_be(subject, plural)} {_ing(base)}"
        elif tense == "negative":
            verb_words = f"{self.pick(['didn', 'don' if plural else 'doesn', 'can', 'won'])}'t {base}"
        else:
            verb_words = base if plural else _third(base)
        tail = self.tail("now" if tense in ("progressive", "negative") else tense, with_place=not rest)
        return " ".join(p for p in (verb_words, rest, tail) if p)

    def statement(self) -> str:
        words, plural, animal = self.subject()
        tense = self.pick("now,now,past,past,future,progressive,negative")
        text = f"{words} {self.predicate(words, plural, animal, tense)}"
        if words in _CONTRACTED_BE and tense == "progressive" and self.chance(0.5):
            text = text.replace(f"{words} {_be(words, plural)} ", _CONTRACTED_BE[words] + " ", 1)
        if self.chance(0.15):
            text = f"{self.pick('yes,no,well,oh,look,so')}, {text}"
        return text + self.pick([".", ".", "!"])

    def description(self) -> str:
        roll = self.rng.random()
        if roll < 0.4:
            np_, plural = self.noun_phrase(self.pick([_ANIMALS, _THINGS, _PLACES]))
            adj = self.pick(_QUALITIES) if self.chance(0.6) else f"{self.pick(_SIZES)} and {self.pick(_COLOURS)}"
            return f"{np_} {self.pick(['look', 'are', 'seem'] if plural else ['looks', 'is', 'seems'])} " \
                   f"{'very ' if self.chance(0.25) else ''}{adj}."
        if roll < 0.7:
            plural = self.chance(0.3)
            thing = self.bare_noun(self.pick([_ANIMALS, _THINGS]), plural)
            lead = "there are some" if plural else f"{self.pick(_THERE)} {_article(thing)}"
            return f"{lead} {thing} {self.place()}."
        who = self.pick("i'm,we're,they're,she's,he's,you're,i am,my dog is,the kids are,grandma is")
        when = " " + self.pick(_TIMES_NOW) if self.chance(0.4) else ""
        return f"{who} {'so ' if self.chance(0.3) else ''}{self.pick(_FEELINGS)}{when}."

    def question(self) -> str:
        roll = self.rng.random()
        if roll < 0.3:
            aux = self.pick("can,will,do,did,could,should")
            who = self.pick("you,we,they,i")
            base = self.pick(_ASKED)
            return f"{aux} {who} {base} {self.obj(base, False)}{' ' + self.place() if self.chance(0.3) else ''}?"
        if roll < 0.5:
            if self.chance(0.3):
                who, plural = self.noun_phrase(self.pick([_PEOPLE, _ANIMALS]))
                return f"why {'are' if plural else 'is'} {who} so {self.pick(_FEELINGS)}?"
            thing, plural = self.noun_phrase(self.pick([_THINGS, _ANIMALS]))
            return f"where {'are' if plural else 'is'} {thing}?"
        if roll < 0.65:
            words, plural, _ = self.subject(pronouns=False)
            base, _ = _verb(self.pick(_INTRANSITIVE))
            return " ".join(filter(None, ("do" if plural else "does", words, base, self.tail("now")))) + "?"
        if roll < 0.8:
            asked = self.pick("who took,who has,what is in,who found,who broke,what happened to")
            return f"{asked} {self.noun_phrase(_THINGS)[0]}?"
        wh = self.pick("what where when how")
        verb = self.pick("eat read sing cook draw" if wh == "what" else "play eat sleep go swim work read sing")
        return f"{wh} {self.pick('do did can should')} {self.pick('you we they i')} {verb}" \
               f"{' ' + self.pick(_TIMES_NOW) if self.chance(0.4) else ''}?"

    def command(self) -> str:
        base, _ = _verb(self.pick(_TRANSITIVE))
        roll = self.rng.random()
        if roll < 0.35:
            text = f"{'please ' if self.chance(0.4) else ''}{base} {self.obj(base, False)}"
        elif roll < 0.55:
            text = f"let's {self.pick(['go', 'walk', 'run', 'drive'])} {self.place()}"
        elif roll < 0.75:
            text = f"don't {base} {self.obj(base, False)}"
        else:
            text = f"look at {self.obj('see', True)}"
        if self.chance(0.25):
            text += f", {self.pick(_NAMES)}"
        return text + self.pick([".", "!"])

    def compound(self) -> str:
        first, second = self.statement()[:-1], self.statement()[:-1]
        if "," in first or "," in second:
            return first + "."
        return f"{first}, {self.pick('and,but,so,because')} {second}."


def sentence(rng: np.random.Generator, max_words: int = 12, min_words: int = 1) -> str:
    """One lowercase sentence of `min_words`..`max_words` words (hyphenated words and contractions count
    once), ending in '.', '?' or '!'. Sentences run to about 15 words; past that `min_words` cannot be met
    and a short one is returned."""
    if max_words < 1 or min_words > max_words:
        raise ValueError(f"need 1 <= min_words <= max_words, got {min_words}..{max_words}")
    maker = _Maker(rng)
    kinds = (maker.statement, maker.statement, maker.statement, maker.description, maker.question,
             maker.question, maker.command, maker.compound)
    for _ in range(200):
        if rng.random() < 0.06:
            text = maker.pick(_GREETINGS)
        else:
            text = kinds[int(rng.integers(len(kinds)))]()
        if min_words <= len(text.split()) <= max_words:
            return text
    fits = [g for g in _GREETINGS if len(g.split()) <= max_words]
    return fits[int(rng.integers(len(fits)))] if fits else "hi!"

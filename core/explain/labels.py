"""The art label tables shared by the explanation dataset and the art CNN (issue 7). No torch.

One table of facts: 25 artists with their movements and typical genres, 27 movements (the WikiArt style set)
with what a network sees in them, 19 genres with their visual cues. ``ARTISTS``, ``STYLES`` and ``GENRES`` are in
a fixed order: a CNN head's class index ``i`` means ``ARTISTS[i]`` (etc.), so never reorder or insert in the middle.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Artist:
    name: str
    styles: tuple[str, ...]   # movements, most typical first
    genres: tuple[str, ...]   # typical genres, most typical first
    signature: tuple[str, ...]  # visual traits a network can pick up
    era: str


@dataclass(frozen=True)
class Style:
    name: str
    period: str
    cues: tuple[str, ...]     # what the network detects
    idea: str                 # why those cues define the movement
    related: tuple[str, ...]  # movements a classifier confuses it with


@dataclass(frozen=True)
class Genre:
    name: str
    cues: tuple[str, ...]


_STYLE_ROWS: tuple[Style, ...] = (
    Style("Abstract Expressionism", "1940s-1950s New York",
          ("large gestural marks", "all-over composition without a focal point", "no recognisable subject"),
          "the painting records the act and emotion of painting rather than depicting something",
          ("Action Painting", "Color Field Painting", "Expressionism")),
    Style("Action Painting", "late 1940s-1950s",
          ("dripped and poured skeins of paint", "dense interlaced lines", "an edge-to-edge field of splatter"),
          "paint is applied by movement of the whole body, so the canvas is a trace of action",
          ("Abstract Expressionism",)),
    Style("Analytical Cubism", "1909-1912",
          ("fragmented planes", "a muted palette of browns and greys", "overlapping facets seen from several angles"),
          "objects are broken down and shown from several viewpoints at once",
          ("Cubism", "Synthetic Cubism")),
    Style("Art Nouveau", "1890-1910",
          ("flowing organic contours", "flat decorative patterning", "gold and ornamental surfaces"),
          "fine art and decoration merge in sinuous, stylised forms",
          ("Symbolism", "Expressionism")),
    Style("Baroque", "17th century",
          ("strong chiaroscuro", "dramatic diagonal compositions", "rich dark backgrounds"),
          "light and movement are used to create drama and emotional intensity",
          ("Mannerism", "Rococo", "High Renaissance")),
    Style("Color Field Painting", "1950s-1960s",
          ("large flat areas of colour", "soft-edged rectangles", "no gestural brushwork"),
          "colour itself is the subject, meant to envelop the viewer",
          ("Abstract Expressionism", "Minimalism")),
    Style("Contemporary Realism", "1970s onward",
          ("crisp photographic detail", "everyday modern subjects", "even, clear lighting"),
          "observed reality is rendered precisely after decades of abstraction",
          ("Realism", "New Realism")),
    Style("Cubism", "1907-1920s",
          ("geometric faceting", "flattened space", "multiple simultaneous viewpoints"),
          "perspective is abandoned so that form is analysed into planes",
          ("Analytical Cubism", "Synthetic Cubism", "Expressionism")),
    Style("Early Renaissance", "15th century Italy",
          ("linear perspective", "clear contours", "calm, balanced figures"),
          "artists rediscovered classical proportion and measured space",
          ("High Renaissance", "Northern Renaissance")),
    Style("Expressionism", "1905-1930s",
          ("distorted forms", "intense non-naturalistic colour", "agitated brushwork"),
          "the inner emotional state matters more than visual accuracy",
          ("Fauvism", "Post-Impressionism", "Abstract Expressionism")),
    Style("Fauvism", "1905-1910",
          ("pure unmixed colours straight from the tube", "bold flat areas", "simplified drawing"),
          "colour is freed from describing nature and used for expression",
          # Rousseau's "The Hungry Lion" hung in the Fauves' room at the 1905 Salon d'Automne.
          ("Expressionism", "Post-Impressionism", "Naive Art")),
    Style("High Renaissance", "c. 1490-1527",
          ("sfumato modelling", "pyramidal compositions", "idealised anatomy"),
          "harmony, balance and ideal beauty reach their classical peak",
          ("Early Renaissance", "Mannerism")),
    Style("Impressionism", "1860s-1880s France",
          ("short broken brushstrokes", "a bright high-key palette", "light and atmosphere over outline"),
          "the painter captures a fleeting moment of light, often outdoors",
          ("Post-Impressionism", "Pointillism", "Realism")),
    Style("Mannerism", "c. 1520-1600",
          ("elongated figures", "unnatural acid colours", "crowded, unstable space"),
          "Renaissance harmony is deliberately strained for elegance and tension",
          ("High Renaissance", "Baroque")),
    Style("Minimalism", "1960s",
          ("hard-edged geometric shapes", "very few colours", "industrial flatness"),
          "everything expressive is stripped away to leave the object itself",
          ("Color Field Painting",)),
    Style("Naive Art", "19th-20th century",
          ("flat perspective", "meticulous childlike detail", "bright, even colour"),
          "an untrained directness replaces academic rules",
          ("Post-Impressionism", "Fauvism", "Symbolism")),
    Style("New Realism", "1960s",
          ("assembled everyday objects", "collage-like surfaces", "consumer imagery"),
          "reality is appropriated directly instead of represented",
          ("Pop Art", "Contemporary Realism")),
    Style("Northern Renaissance", "15th-16th century Flanders and Germany",
          ("minute detail", "luminous oil glazes", "meticulous textures of cloth and metal"),
          "oil glazing lets painters render the visible world with jewel-like precision",
          ("Early Renaissance", "High Renaissance")),
    Style("Pointillism", "1886-1900s",
          ("a surface of small dots of pure colour", "optical colour mixing", "static, ordered figures"),
          "colour theory is applied systematically so the eye mixes the dots",
          ("Impressionism", "Post-Impressionism")),
    Style("Pop Art", "1950s-1960s",
          ("flat commercial colour", "repetition and silkscreen texture", "images from mass media"),
          "consumer culture and celebrity become the subject matter of high art",
          ("New Realism", "Minimalism")),
    Style("Post-Impressionism", "1886-1905",
          ("thick expressive impasto", "bold outlines", "structured, simplified forms"),
          "painters kept Impressionist colour but added structure, symbol and emotion",
          # Henri Rousseau showed beside Seurat and Van Gogh at the Salon des Indépendants: flat bold colour and
          # simplified forms are what a classifier confuses with Naive Art.
          ("Impressionism", "Expressionism", "Pointillism", "Fauvism", "Naive Art")),
    Style("Realism", "1840s-1880s",
          ("earthy, sober palette", "ordinary people and places", "solid, unidealised figures"),
          "everyday life is shown truthfully, without idealisation",
          ("Romanticism", "Impressionism", "Contemporary Realism")),
    Style("Rococo", "c. 1730-1780",
          ("pastel colours", "light, feathery brushwork", "playful, ornamental scenes"),
          "aristocratic pleasure and elegance replace Baroque gravity",
          ("Baroque", "Romanticism")),
    Style("Romanticism", "c. 1800-1850",
          ("dramatic skies and weather", "turbulent brushwork", "sublime, emotional scenes"),
          "emotion, nature and the sublime are valued above reason",
          ("Realism", "Baroque")),
    Style("Symbolism", "1880s-1910",
          ("dreamlike imagery", "decorative stylisation", "mysterious, allegorical figures"),
          "ideas and moods are suggested through symbols rather than described",
          ("Art Nouveau", "Romanticism")),
    Style("Synthetic Cubism", "1912-1920s",
          ("flat cut-paper shapes", "brighter colours than early Cubism", "collage and lettering"),
          "the picture is built up from simple flat pieces instead of analysed into facets",
          ("Cubism", "Analytical Cubism")),
    Style("Ukiyo-e", "17th-19th century Japan",
          ("bold outlines with flat colour", "woodblock-print texture", "asymmetric compositions"),
          "woodblock prints of the 'floating world' flatten space into pattern",
          ("Art Nouveau",)),
)

_GENRE_ROWS: tuple[Genre, ...] = (
    Genre("Landscape", ("a horizon line", "sky filling the upper part", "natural scenery without a central figure")),
    Genre("Portrait", ("a single face at the centre", "head-and-shoulders framing", "a figure facing the viewer")),
    Genre("Still Life", ("arranged objects on a table", "fruit, vessels or flowers", "close, intimate framing")),
    Genre("Religious Painting", ("haloes and sacred figures", "devotional symmetry", "biblical narrative scenes")),
    Genre("Genre Painting", ("scenes of everyday life", "several figures at work or leisure", "domestic settings")),
    Genre("Cityscape", ("buildings and streets", "urban perspective lines", "bridges and rooftops")),
    Genre("Abstract", ("no recognisable objects", "pure shape, colour and line", "non-representational composition")),
    Genre("Self-Portrait", ("the artist's own face", "a direct gaze at the viewer", "mirror-like framing")),
    Genre("Mythological Painting", ("classical gods and heroes", "idealised nudes", "allegorical attributes")),
    Genre("Seascape", ("open water", "waves and boats", "a low horizon over the sea")),
    Genre("History Painting", ("large multi-figure narrative", "dramatic gestures", "a depicted historic event")),
    Genre("Nude Painting", ("an unclothed figure", "emphasis on the body's contours", "reclining or bathing poses")),
    Genre("Flower Painting", ("blooms filling the frame", "petal and leaf detail", "vases and bouquets")),
    Genre("Sketch and Study", ("unfinished lines", "visible underdrawing", "a monochrome or partial surface")),
    Genre("Interior", ("walls, windows and furniture", "an enclosed room", "patterned domestic space")),
    Genre("Animal Painting", ("an animal as the main subject", "fur or feather texture", "a creature in its setting")),
    Genre("Allegorical Painting", ("personified ideas", "symbolic objects", "staged emblematic figures")),
    Genre("Illustration", ("strong narrative line work", "book or print conventions", "clear graphic shapes")),
    Genre("Design", ("repeated motifs", "graphic flat layout", "commercial or poster-like arrangement")),
)

_ARTIST_ROWS: tuple[Artist, ...] = (
    Artist("Leonardo da Vinci", ("High Renaissance",), ("Portrait", "Religious Painting", "Sketch and Study"),
           ("smoky sfumato transitions", "enigmatic half-smiles", "atmospheric blue distances"), "Italian, 1452-1519"),
    Artist("Sandro Botticelli", ("Early Renaissance",), ("Mythological Painting", "Religious Painting", "Portrait"),
           ("graceful linear contours", "pale idealised faces", "flowing hair and drapery"), "Florentine, c.1445-1510"),
    Artist("Jan van Eyck", ("Northern Renaissance",), ("Religious Painting", "Portrait"),
           ("microscopic detail", "glowing oil glazes", "reflections in mirrors and metal"), "Flemish, c.1390-1441"),
    Artist("Albrecht Dürer", ("Northern Renaissance",),
           ("Religious Painting", "Portrait", "Self-Portrait", "Animal Painting", "Sketch and Study"),
           ("precise engraved line", "hair-by-hair texture", "frontal self-presentation"), "German, 1471-1528"),
    Artist("El Greco", ("Mannerism",), ("Religious Painting", "Portrait"),
           ("elongated flame-like figures", "cold acid colours", "stormy grey-green skies"), "Greek-Spanish, 1541-1614"),
    Artist("Caravaggio", ("Baroque",), ("Religious Painting", "Genre Painting", "Mythological Painting"),
           ("spotlit figures against black", "gritty real-life models", "tenebrist contrast"), "Italian, 1571-1610"),
    Artist("Rembrandt", ("Baroque",), ("Portrait", "Self-Portrait", "Religious Painting", "History Painting"),
           ("golden-brown tonality", "thick impasto in the lights", "deep psychological faces"), "Dutch, 1606-1669"),
    Artist("Peter Paul Rubens", ("Baroque",),
           ("Mythological Painting", "Religious Painting", "History Painting", "Portrait", "Allegorical Painting"),
           ("fleshy, energetic figures", "swirling diagonal movement", "warm luminous skin tones"), "Flemish, 1577-1640"),
    Artist("Jean-Honoré Fragonard", ("Rococo",), ("Genre Painting", "Portrait", "Mythological Painting"),
           ("frothy, rapid brushwork", "rosy pastel palette", "playful amorous scenes"), "French, 1732-1806"),
    Artist("Francisco Goya", ("Romanticism",), ("Portrait", "History Painting", "Genre Painting"),
           ("dark, brooding grounds", "loose expressive handling", "unflattering candour"), "Spanish, 1746-1828"),
    Artist("J. M. W. Turner", ("Romanticism",), ("Landscape", "Seascape", "History Painting"),
           ("vortex-like light", "dissolving forms in mist and spray", "luminous yellows"), "British, 1775-1851"),
    Artist("Gustave Courbet", ("Realism",), ("Landscape", "Genre Painting", "Self-Portrait", "Nude Painting"),
           ("palette-knife textures", "dark earthy ground", "solid unidealised figures"), "French, 1819-1877"),
    Artist("Claude Monet", ("Impressionism",), ("Landscape", "Seascape", "Cityscape", "Flower Painting"),
           ("shimmering reflections on water", "dabs of complementary colour", "dissolving outlines"), "French, 1840-1926"),
    Artist("Edgar Degas", ("Impressionism",), ("Genre Painting", "Portrait", "Nude Painting"),
           ("off-centre cropped compositions", "dancers and pastel textures", "artificial stage light"), "French, 1834-1917"),
    Artist("Pierre-Auguste Renoir", ("Impressionism",), ("Portrait", "Genre Painting", "Nude Painting"),
           ("soft feathery brushwork", "warm pearly skin tones", "dappled sunlight on figures"), "French, 1841-1919"),
    Artist("Paul Cézanne", ("Post-Impressionism",), ("Still Life", "Landscape", "Portrait"),
           ("constructive parallel brushstrokes", "geometric simplification", "tilted tabletops"), "French, 1839-1906"),
    Artist("Vincent van Gogh", ("Post-Impressionism", "Expressionism"),
           ("Landscape", "Self-Portrait", "Still Life", "Flower Painting", "Portrait"),
           ("swirling impasto strokes", "vivid yellows and blues", "rhythmic directional marks"), "Dutch, 1853-1890"),
    Artist("Georges Seurat", ("Pointillism", "Post-Impressionism"), ("Landscape", "Genre Painting", "Seascape"),
           ("dense fields of coloured dots", "stiff, geometric figures", "calm, measured light"), "French, 1859-1891"),
    Artist("Henri Matisse", ("Fauvism", "Expressionism"), ("Portrait", "Interior", "Still Life", "Nude Painting"),
           ("flat saturated colour", "arabesque patterns", "simplified, confident contours"), "French, 1869-1954"),
    Artist("Gustav Klimt", ("Art Nouveau", "Symbolism"), ("Portrait", "Allegorical Painting", "Landscape"),
           ("gold-leaf ornament", "mosaic-like patterning", "elongated sensual figures"), "Austrian, 1862-1918"),
    Artist("Pablo Picasso", ("Cubism", "Analytical Cubism", "Synthetic Cubism", "Expressionism"),
           ("Portrait", "Still Life", "Nude Painting"),
           ("faces seen from front and profile at once", "angular fractured planes", "bold black contours"),
           "Spanish, 1881-1973"),
    Artist("Wassily Kandinsky", ("Expressionism", "Abstract Expressionism"), ("Abstract", "Landscape"),
           ("floating geometric shapes", "musical rhythms of colour", "free black lines"), "Russian, 1866-1944"),
    Artist("Jackson Pollock", ("Action Painting", "Abstract Expressionism"), ("Abstract",),
           ("poured and dripped enamel", "dense tangled webs of line", "no focal point"), "American, 1912-1956"),
    Artist("Andy Warhol", ("Pop Art",), ("Portrait", "Still Life", "Design"),
           ("silkscreened repetition", "flat acid colours", "celebrity and product imagery"), "American, 1928-1987"),
    Artist("Katsushika Hokusai", ("Ukiyo-e",), ("Landscape", "Seascape", "Illustration"),
           ("clawing stylised waves", "Prussian-blue woodblock colour", "bold outlines over flat areas"),
           "Japanese, 1760-1849"),
)

ARTIST_TABLE: dict[str, Artist] = {a.name: a for a in _ARTIST_ROWS}
STYLE_TABLE: dict[str, Style] = {s.name: s for s in _STYLE_ROWS}
GENRE_TABLE: dict[str, Genre] = {g.name: g for g in _GENRE_ROWS}

ARTISTS: tuple[str, ...] = tuple(ARTIST_TABLE)
STYLES: tuple[str, ...] = tuple(STYLE_TABLE)
GENRES: tuple[str, ...] = tuple(GENRE_TABLE)


def artist_styles(artist: str) -> tuple[str, ...]:
    """The movements an artist belongs to, most typical first."""
    return ARTIST_TABLE[artist].styles


def artist_genres(artist: str) -> tuple[str, ...]:
    """The genres an artist typically painted, most typical first."""
    return ARTIST_TABLE[artist].genres


def confusable_styles(artist: str, styles: dict[str, Style] | None = None,
                      artists: dict[str, Artist] | None = None) -> tuple[str, ...]:
    """Movements a classifier plausibly confuses with ``artist``'s own: the related styles of each of their
    movements that are not their own, in table order (repeats kept, so a movement close to several of theirs
    is drawn more often). The dataset's style mismatches come only from here."""
    styles, artists = styles or STYLE_TABLE, artists or ARTIST_TABLE
    own = artists[artist].styles
    return tuple(r for s in own for r in styles[s].related if r not in own)


def _check_tables(artists: tuple[Artist, ...], styles: tuple[Style, ...], genres: tuple[Genre, ...]) -> None:
    """Raise ``ValueError`` on a table the dataset cannot use: wrong sizes, a cross-reference typo (it would
    silently produce an unknown label), or a label no generated case can ever carry (a CNN head class the
    explainer never sees explained)."""
    by_style, by_genre = {s.name: s for s in styles}, {g.name: g for g in genres}
    by_artist = {a.name: a for a in artists}
    if (len(by_artist), len(by_style), len(by_genre)) != (25, 27, 19):
        raise ValueError(f"expected 25 artists, 27 styles, 19 genres; got {len(by_artist)}, {len(by_style)}, "
                         f"{len(by_genre)}")
    for s in styles:
        if unknown := [r for r in s.related if r not in by_style]:
            raise ValueError(f"style {s.name}: unknown related {unknown}")
    reach_s: set[str] = set()
    reach_g: set[str] = set()
    for a in artists:
        if unknown := [x for x in a.styles if x not in by_style] + [g for g in a.genres if g not in by_genre]:
            raise ValueError(f"artist {a.name}: unknown style or genre {unknown}")
        confusable = confusable_styles(a.name, by_style, by_artist)
        unusual = [g for g in by_genre if g not in a.genres]
        if not confusable or not unusual:
            raise ValueError(f"artist {a.name}: no plausible style or genre mismatch to draw")
        reach_s.update(a.styles, confusable)
        reach_g.update(a.genres, unusual)
    if missing := [s for s in by_style if s not in reach_s] + [g for g in by_genre if g not in reach_g]:
        raise ValueError(f"labels no case can reach (no artist's own or related style): {missing}")


_check_tables(_ARTIST_ROWS, _STYLE_ROWS, _GENRE_ROWS)

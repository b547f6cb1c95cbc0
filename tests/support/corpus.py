"""A deterministic, seeded corpus of awkward text for exactness tests and benchmarks.

Nothing is downloaded or read from disk: every chunk is built from the small tables
below with ``random.Random(seed)``, so the same seed always gives the same corpus.
Chunks are 1-64 KiB of UTF-8 and each has a ``kind``; the kinds are cycled so every one
of them is well represented. Generation of the default 5 MiB takes about a second.
"""

from __future__ import annotations

import base64
import json
import math
import random
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

MIB = 1024 * 1024
DEFAULT_SEED = 20_240_601
DEFAULT_TOTAL_BYTES = 5 * MIB + 64 * 1024
MIN_CHUNK_BYTES = 1024
MAX_CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class Chunk:
    index: int
    kind: str
    text: str

    @property
    def nbytes(self) -> int:
        return len(self.text.encode("utf-8"))

    def describe(self, width: int = 160) -> str:
        shown = repr(self.text[:width]) + ("..." if len(self.text) > width else "")
        return f"chunk #{self.index} ({self.kind}, {self.nbytes} bytes): {shown}"


# ---------------------------------------------------------------- character tables

WORDS = (
    "the of and to in is you that it he was for on are as with his they at be this have "
    "from or one had by word but not what all were we when your can said there use an each "
    "which she do how their if will up other about out many then them these so some her "
    "would make like him into time has look two more write go see number no way could people "
    "my than first water been call who oil its now find long down day did get come made may "
    "part over new sound take only little work know place year live me back give most very "
    "after thing our just name good sentence man think say great where help through much "
    "before line right too mean old any same tell boy follow came want show also around form "
    "three small set put end does another well large must big even such because turn here why "
    "ask went men read need land different home us move try kind hand picture again change "
    "off play spell air away animal house point page letter mother answer found study still "
    "learn should America world tokenizer encoding budget message history context window "
    "agent model request response Python Rust JavaScript naïve café résumé coöperate façade"
).split()

CONTRACTIONS = ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'VE", "'M",
                "'LL", "'D", "'Re", "'rE", "'Ll", "'lL", "'Ve", "'ſ", "'ſt", "'ſs", "n't", "N'T")

IDENT_PARTS = ("get", "set", "user", "id", "name", "http", "HTTP", "json", "parse", "Response",
               "request", "buffer", "len", "count", "token", "tokens", "cache", "item", "list",
               "map", "IO", "Error", "value", "key", "max", "min", "idx", "tmp", "data", "URL",
               "config", "Handler", "async", "worker", "pool", "row", "col", "x", "y", "i", "n")

HANZI = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持音跑"
HIRAGANA = "".join(chr(c) for c in range(0x3041, 0x3097))
KATAKANA = "".join(chr(c) for c in range(0x30A1, 0x30FB)) + "ー"
CJK_PUNCT = "。、「」『』！？・（）【】〜：；，．"
FULLWIDTH = "".join(chr(c) for c in range(0xFF21, 0xFF3B)) + "".join(chr(c) for c in range(0xFF10, 0xFF1A))

EMOJI = ("😀", "😂", "🥲", "😍", "🤖", "🚀", "🔥", "✨", "❤️", "❤", "✅", "⚠️", "👍", "👋", "🙏", "🎉",
         "🐍", "🦀", "🌍", "🧪", "📦", "💡", "🤔", "🫠", "☕", "⭐", "☀️", "🏳️", "©️", "®", "™")
SKIN_TONES = ("\U0001F3FB", "\U0001F3FC", "\U0001F3FD", "\U0001F3FE", "\U0001F3FF")
SKINNABLE = ("👍", "👋", "🙏", "👏", "💪", "🤝", "✌️", "🧑", "👩", "👨")
ZWJ_SEQUENCES = (
    "👨\u200d👩\u200d👧\u200d👦", "👩\u200d💻", "🧑\u200d🚀", "🏳️\u200d🌈", "🏴\u200d☠️",
    "👩🏽\u200d🔬", "🧑🏿\u200d🤝\u200d🧑🏻", "❤️\u200d🔥", "🐻\u200d❄️", "👁️\u200d🗨️", "😶\u200d🌫️",
)
FLAGS = ("🇺🇸", "🇯🇵", "🇩🇪", "🇫🇷", "🇧🇷", "🇮🇳", "🇪🇺", "🏴\U000E0067\U000E0062\U000E0065\U000E006E\U000E0067\U000E007F")
KEYCAPS = ("1\ufe0f\u20e3", "#\ufe0f\u20e3", "*\ufe0f\u20e3", "0\u20e3")

COMBINING = "".join(chr(c) for c in range(0x0300, 0x0370))
MARKED_WORDS = (
    "नमस्ते दुनिया", "हिन्दी भाषा", "สวัสดีครับ", "ภาษาไทย", "שָׁלוֹם עֲלֵיכֶם", "مَرْحَبًا بِالْعَالَمِ",
    "Tiếng Việt", "ক্ষমা", "தமிழ்", "ಕನ್ನಡ", "ཀུན་མཁྱེན", "᭛᭜", "g̈", "ñ", "Z̤̤̈̈",
)
DIGIT_SETS = (
    "0123456789",
    "".join(chr(c) for c in range(0x0660, 0x066A)),   # Arabic-Indic
    "".join(chr(c) for c in range(0x06F0, 0x06FA)),   # Extended Arabic-Indic
    "".join(chr(c) for c in range(0x0966, 0x0970)),   # Devanagari
    "".join(chr(c) for c in range(0x09E6, 0x09F0)),   # Bengali
    "".join(chr(c) for c in range(0x0E50, 0x0E5A)),   # Thai
    "".join(chr(c) for c in range(0xFF10, 0xFF1A)),   # fullwidth
    "".join(chr(c) for c in range(0x1D7CE, 0x1D7D8)),  # mathematical bold (4-byte UTF-8)
)
OTHER_NUMBERS = (
    "".join(chr(c) for c in range(0x2160, 0x2189))     # Roman numerals (Nl)
    + "〇〡〢〣ᛮᛯ"                                       # more Nl
    + "²³¹⁰⁴⁵₀₁₂½⅓¼¾⅞①②③⑳⑴⒈❶➊"                         # No
)

SPECIAL_TOKENS = ("<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
                  "<|endofprompt|>", "<|im_start|>", "<|im_end|>", "<|startoftext|>",
                  "<|reserved_200000|>", "<|endoftext", "endoftext|>", "<||>", "<|")

UNICODE_SPACES = ("\u00a0", "\u3000", "\u2028", "\u2029", "\u2000", "\u2003", "\u2007", "\u2009",
                  "\u200a", "\u202f", "\u205f", "\u1680", "\u0085", "\x0b", "\x0c", "\t", "\r",
                  "\n", "\r\n", " ")
NOT_SPACES = ("\u200b", "\u200c", "\u200d", "\ufeff", "\u180e", "\x1c", "\x1d", "\x1e", "\x1f",
              "\x00", "\x7f")
PUNCT = ".,;:!?-_()[]{}\"'`~@#$%^&*+=|\\/<>…—–“”‘’«»¿¡§¶•"

WS_PIECES = (" ", "  ", "\t", "\n", "\r\n", "\r", "\n\n", " \n", "\t\n", "\u3000", "\u00a0")


# ------------------------------------------------------------------ small builders


def _word(rng: random.Random) -> str:
    w = rng.choice(WORDS)
    r = rng.random()
    if r < 0.08:
        return w.capitalize()
    if r < 0.1:
        return w.upper()
    return w


def _ident(rng: random.Random, style: str | None = None) -> str:
    parts = [rng.choice(IDENT_PARTS) for _ in range(rng.randint(1, 4))]
    style = style or rng.choice(("snake", "camel", "pascal", "screaming"))
    if style == "snake":
        return "_".join(p.lower() for p in parts)
    if style == "screaming":
        return "_".join(p.upper() for p in parts)
    if style == "pascal":
        return "".join(p[:1].upper() + p[1:] for p in parts)
    return parts[0].lower() + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def _number(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.3:
        return str(rng.randint(0, 10 ** rng.randint(1, 12)))
    if r < 0.45:
        return f"{rng.uniform(-1e6, 1e6):.{rng.randint(0, 6)}f}"
    if r < 0.55:
        return f"{rng.randint(0, 10**9):,}"
    if r < 0.62:
        return f"{rng.uniform(0, 1):.3e}"
    if r < 0.7:
        return hex(rng.getrandbits(rng.choice((8, 16, 32, 64))))
    if r < 0.9:
        digits = rng.choice(DIGIT_SETS)
        return "".join(rng.choice(digits) for _ in range(rng.randint(1, 14)))
    return "".join(rng.choice(OTHER_NUMBERS) for _ in range(rng.randint(1, 6)))


def _sentence(rng: random.Random) -> str:
    words = []
    for i in range(rng.randint(4, 22)):
        w = _word(rng)
        r = rng.random()
        if r < 0.06:
            w += rng.choice(CONTRACTIONS)
        elif r < 0.1:
            w += rng.choice(",,,;:")
        elif r < 0.12:
            w = f"“{w}”" if rng.random() < 0.5 else f'"{w}"'
        elif r < 0.14:
            w = _number(rng)
        elif r < 0.15:
            w = f"({w})"
        words.append(w)
    s = " ".join(words)
    return s[:1].upper() + s[1:] + rng.choice((".", ".", ".", "!", "?", "…", " —", ":"))


# ------------------------------------------------------------------ unit generators
# Each returns one "unit" of its kind, a few dozen bytes to a few KiB. Chunks are built
# from units; ``budget`` is the number of bytes still wanted (runs use it).


def gen_prose(rng: random.Random, budget: int) -> str:
    paragraph = " ".join(_sentence(rng) for _ in range(rng.randint(1, 7)))
    r = rng.random()
    if r < 0.1:
        paragraph = "#" * rng.randint(1, 3) + " " + _sentence(rng)
    elif r < 0.2:
        paragraph = "\n".join(f"{rng.choice('*-+')} {_sentence(rng)}" for _ in range(rng.randint(2, 5)))
    elif r < 0.25:
        paragraph += f" See [{_word(rng)}](https://example.com/{_ident(rng, 'snake')}?q={rng.randint(0, 99)}) and **{_word(rng)}** or `{_ident(rng)}`."
    return paragraph + rng.choice(("\n\n", "\n\n", "\n", " ", "\r\n\r\n"))


def gen_python(rng: random.Random, budget: int) -> str:
    name = _ident(rng, "snake")
    args = ", ".join(f"{_ident(rng, 'snake')}: {rng.choice(('int', 'str', 'list[str]', 'dict[str, Any]', 'float | None'))}" for _ in range(rng.randint(0, 4)))
    ind = rng.choice(("    ", "    ", "  ", "\t"))
    lines = []
    if rng.random() < 0.3:
        decorator = rng.choice(("staticmethod", "functools.cache", 'pytest.fixture(scope="session")', "dataclass(frozen=True)"))
        lines.append(f"@{decorator}")
    lines.append(f"def {name}({args}) -> {rng.choice(('None', 'int', 'str', 'bool', 'Iterator[int]'))}:")
    lines.append(f'{ind}"""{_sentence(rng)}"""')
    for _ in range(rng.randint(2, 14)):
        depth = ind * rng.randint(1, 4)
        r = rng.random()
        v, w = _ident(rng, "snake"), _ident(rng)
        if r < 0.2:
            lines.append(f"{depth}{v} = {w}({rng.randint(0, 999)}, key={v!r}) ** 2 // 3")
        elif r < 0.35:
            lines.append(f"{depth}if {v} != {w} and not {v}.{w}:")
        elif r < 0.45:
            lines.append(f"{depth}for i, {v} in enumerate({w}[1:-1]):")
        elif r < 0.55:
            lines.append(f"{depth}# {_sentence(rng)}")
        elif r < 0.65:
            lines.append(f'{depth}print(f"{{{v}=}} {_word(rng)}: {{{w}:>10}}\\n")')
        elif r < 0.72:
            lines.append(f"{depth}raise ValueError(\"{_sentence(rng)}\")")
        elif r < 0.8:
            lines.append("")
        elif r < 0.85:
            lines.append(f"{depth}return {{'{v}': [{_number(rng)}, {_number(rng)}], **{w}}}   ")
        else:
            lines.append(f"{depth}{v} += {rng.randint(1, 9)}  # type: ignore[{_ident(rng, 'snake')}]")
    return "\n".join(lines) + "\n\n\n"


def gen_rust(rng: random.Random, budget: int) -> str:
    name, ty = _ident(rng, "snake"), _ident(rng, "pascal")
    lines = [
        f"/// {_sentence(rng)}",
        f"#[derive(Debug, Clone)]" if rng.random() < 0.5 else "#[inline(always)]",
        f"pub fn {name}<'a, T: AsRef<str> + 'a>(x: &'a [T], n: usize) -> Result<{ty}, Box<dyn std::error::Error>> {{",
    ]
    for _ in range(rng.randint(2, 12)):
        d = "    " * rng.randint(1, 3)
        r = rng.random()
        v = _ident(rng, "snake")
        if r < 0.25:
            lines.append(f"{d}let mut {v}: Vec<u8> = Vec::with_capacity(n * {rng.randint(1, 64)});")
        elif r < 0.4:
            lines.append(f"{d}match {v}.get(i..i + 2) {{ Some(&[0xC5, 0xBF]) => {{}}, _ => return Err(\"{_word(rng)}\".into()) }}")
        elif r < 0.55:
            lines.append(f"{d}for (i, {v}) in x.iter().enumerate().skip({rng.randint(0, 9)}) {{")
        elif r < 0.65:
            lines.append(f"{d}// {_sentence(rng)}")
        elif r < 0.75:
            lines.append(f"{d}impl<'de> Deserialize<'de> for {ty} {{}}")
        elif r < 0.85:
            lines.append(f"{d}assert_eq!({v}, {rng.randint(0, 10**6)}u32, \"{{:?}}\", {v});")
        else:
            lines.append(f"{d}}}")
    lines.append("}")
    return "\n".join(lines) + "\n\n"


def gen_js(rng: random.Random, budget: int) -> str:
    name, comp = _ident(rng, "camel"), _ident(rng, "pascal")
    lines = [f"export const {name} = async ({_ident(rng, 'camel')}, {{ {_ident(rng, 'camel')} = {rng.randint(0, 99)} }}) => {{"]
    for _ in range(rng.randint(2, 12)):
        d = "  " * rng.randint(1, 4)
        r = rng.random()
        v = _ident(rng, "camel")
        if r < 0.2:
            lines.append(f"{d}const {v} = await fetch(`https://api.example.com/v{rng.randint(1, 3)}/${{{v}}}?limit=${{n}}`);")
        elif r < 0.35:
            lines.append(f"{d}if ({v} === null || {v}?.length <= {rng.randint(0, 9)}) return [];")
        elif r < 0.5:
            lines.append(f"{d}return <{comp} className=\"{_word(rng)}-{_word(rng)}\" onClick={{() => {v}(e)}} />;")
        elif r < 0.6:
            lines.append(f"{d}// {_sentence(rng)}")
        elif r < 0.7:
            lines.append(f"{d}/* {_sentence(rng)} */")
        elif r < 0.8:
            lines.append(f"{d}const re = /^[a-z0-9_]+\\d{{2,}}$/gi; {v}.replace(re, '$1');")
        else:
            lines.append(f"{d}}});")
    lines.append("};")
    return "\n".join(lines) + "\n\n"


def _json_value(rng: random.Random, depth: int):
    r = rng.random()
    if depth > 3 or r < 0.35:
        choice = rng.random()
        if choice < 0.3:
            return _number(rng) if rng.random() < 0.2 else rng.randint(-(10**9), 10**9)
        if choice < 0.4:
            return rng.uniform(-1000, 1000)
        if choice < 0.5:
            return rng.choice((True, False, None))
        if choice < 0.6:
            return "".join(rng.choice(HANZI) for _ in range(rng.randint(1, 12)))
        if choice < 0.65:
            return rng.choice(EMOJI) + rng.choice(ZWJ_SEQUENCES)
        return _sentence(rng)
    if r < 0.7:
        return {_ident(rng): _json_value(rng, depth + 1) for _ in range(rng.randint(1, 6))}
    return [_json_value(rng, depth + 1) for _ in range(rng.randint(0, 5))]


def gen_json(rng: random.Random, budget: int) -> str:
    value = {_ident(rng, "snake"): _json_value(rng, 0) for _ in range(rng.randint(1, 5))}
    indent = rng.choice((None, None, 2, 4, "\t"))
    return json.dumps(value, indent=indent, ensure_ascii=rng.random() < 0.4) + rng.choice(("\n", ",\n", "\r\n", ""))


def gen_logs(rng: random.Random, budget: int) -> str:
    lines = []
    for _ in range(rng.randint(1, 20)):
        ts = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{rng.randint(0, 999):03d}Z"
        level = rng.choice(("INFO ", "DEBUG", "WARN ", "ERROR", "TRACE"))
        ip = ".".join(str(rng.randint(0, 255)) for _ in range(4))
        r = rng.random()
        if r < 0.4:
            msg = f'{ip} - - "{rng.choice(("GET", "POST", "PUT"))} /api/v1/{_ident(rng, "snake")}/{rng.randint(1, 99999)}?page={rng.randint(1, 9)} HTTP/1.1" {rng.choice((200, 201, 404, 500))} {rng.randint(10, 99999)} {rng.uniform(0, 999):.1f}ms'
        elif r < 0.6:
            msg = f"request_id={rng.getrandbits(128):032x} user={_ident(rng)} latency_ms={rng.randint(0, 5000)} ok={rng.choice(('true', 'false'))}"
        elif r < 0.75:
            msg = f"Traceback (most recent call last):\n  File \"/srv/app/{_ident(rng, 'snake')}.py\", line {rng.randint(1, 999)}, in {_ident(rng, 'snake')}\n    {_ident(rng, 'snake')}()\nKeyError: '{_ident(rng)}'"
        elif r < 0.85:
            msg = f"[fe80::{rng.getrandbits(16):x}:{rng.getrandbits(16):x}%eth0]:{rng.randint(1024, 65535)} {_sentence(rng)}"
        else:
            msg = " ".join(f"{rng.getrandbits(8):02x}" for _ in range(16)) + "  |" + "".join(rng.choice("abc.XYZ!") for _ in range(16)) + "|"
        lines.append(f"{ts} {level} [{_ident(rng, 'snake')}-{rng.randint(0, 16)}] {msg}")
    return rng.choice(("\n", "\r\n")).join(lines) + "\n"


def gen_cjk(rng: random.Random, budget: int) -> str:
    parts = []
    for _ in range(rng.randint(2, 12)):
        r = rng.random()
        if r < 0.45:
            parts.append("".join(rng.choice(HANZI) for _ in range(rng.randint(2, 30))))
        elif r < 0.6:
            parts.append("".join(rng.choice(HIRAGANA) for _ in range(rng.randint(2, 12))))
        elif r < 0.7:
            parts.append("".join(rng.choice(KATAKANA) for _ in range(rng.randint(2, 10))))
        elif r < 0.85:
            parts.append(" ".join("".join(chr(rng.randint(0xAC00, 0xD7A3)) for _ in range(rng.randint(1, 5))) for _ in range(rng.randint(1, 6))))
        elif r < 0.92:
            parts.append("".join(rng.choice(FULLWIDTH) for _ in range(rng.randint(1, 8))))
        else:
            parts.append(_word(rng))
        parts.append(rng.choice(CJK_PUNCT + "\u3000" + "  \n"))
    return "".join(parts)


def gen_emoji(rng: random.Random, budget: int) -> str:
    out = []
    for _ in range(rng.randint(3, 30)):
        r = rng.random()
        if r < 0.3:
            out.append(rng.choice(EMOJI))
        elif r < 0.5:
            out.append(rng.choice(SKINNABLE) + rng.choice(SKIN_TONES))
        elif r < 0.65:
            out.append(rng.choice(ZWJ_SEQUENCES))
        elif r < 0.72:
            out.append(rng.choice(FLAGS))
        elif r < 0.77:
            out.append(rng.choice(KEYCAPS))
        elif r < 0.9:
            out.append(_word(rng))
        else:
            out.append(rng.choice(EMOJI) * rng.randint(2, 40))
        out.append(rng.choice(("", "", " ", " ", "\n", "!", "\u200d", "'s ")))
    return "".join(out)


def gen_base64(rng: random.Random, budget: int) -> str:
    n = min(max(budget * 3 // 4, 16), rng.choice((48, 300, 3000, 20000, 48000)))
    raw = rng.randbytes(n)
    r = rng.random()
    if r < 0.4:
        blob = base64.b64encode(raw).decode()
        sep = rng.choice(("\n", "\r\n"))
        blob = sep.join(blob[i : i + 76] for i in range(0, len(blob), 76))
    elif r < 0.7:
        blob = base64.b64encode(raw).decode()
    elif r < 0.85:
        blob = "data:image/png;base64," + base64.urlsafe_b64encode(raw).decode()
    else:
        blob = raw.hex()
    return blob + rng.choice(("\n", " ", "\n\n", '"', ""))


RUN_CHARS = ("a", "A", "x", "=", "-", "#", "*", ".", "0", "7", "中", "😀", "ſ", "'", "/", "é",
             "\u0301", "ـ", "ー", "\u3000", "ab", "Ab", "'s", "  \n", "<|endoftext|>", "🇺🇸", "👍🏽")


def gen_char_run(rng: random.Random, budget: int) -> str:
    ch = rng.choice(RUN_CHARS)
    n = max(1, min(budget, rng.choice((100, 1000, 5000, 30000, 65536))) // len(ch.encode()))
    run = ch * n
    r = rng.random()
    if r < 0.4:
        return run  # the run alone: often one pre-tokenizer piece
    return rng.choice(("", " ", "\n", "x")) + run + rng.choice((" ", "\n", " end", "!", "1"))


def gen_whitespace_run(rng: random.Random, budget: int) -> str:
    pieces = []
    for _ in range(rng.randint(1, 6)):
        kind = rng.random()
        n = rng.choice((2, 5, 17, 100, 1000, 4000))
        if kind < 0.25:
            ws = " " * n
        elif kind < 0.4:
            ws = "\t" * n
        elif kind < 0.55:
            ws = "\r\n" * (n // 2 + 1)
        elif kind < 0.7:
            ws = "".join(rng.choice(" \t\r\n") for _ in range(min(n, 500)))
        elif kind < 0.8:
            ws = "\n" * n
        elif kind < 0.9:
            ws = " " * n + "\n" + " " * n
        else:
            ws = "".join(rng.choice(UNICODE_SPACES) for _ in range(min(n, 300)))
        pieces.append(ws)
        pieces.append(rng.choice(("word", "x", "!", "1", "", "'s", "中", "😀", "\u0301a", "/", "}")))
    return "".join(pieces)


def gen_contractions(rng: random.Random, budget: int) -> str:
    out = []
    for _ in range(rng.randint(5, 40)):
        r = rng.random()
        if r < 0.35:
            out.append(_word(rng) + rng.choice(CONTRACTIONS))
        elif r < 0.45:
            out.append(rng.choice(("I", "YOU", "We", "they", "IT", "she")) + rng.choice(("'M", "'LL", "'Re", "'VE", "'D", "'ll", "'s")))
        elif r < 0.55:
            out.append(rng.choice(("Waſſer", "ſ", "ſt", "Meſſe", "'ſ", "ſ'ſ", "ßſ", "ſS")))
        elif r < 0.65:
            out.append(rng.choice(("'", "''", "'''", "’s", "ʼs", "`s", "'ſs")) + rng.choice(("", "s", "re", "LL", " ")))
        elif r < 0.75:
            out.append(rng.choice(("90's", "1's", ")'s", "中's", "😀'll", "é\u0301's", "_'re", "x'd'm", "'s's", "'S'S")))
        elif r < 0.85:
            out.append(rng.choice(CONTRACTIONS) + rng.choice(("", "up", "tart", "ome", "ſ", "1")))
        else:
            out.append(_sentence(rng))
        out.append(rng.choice((" ", " ", "", "\n", "\t", "'", ", ")))
    return "".join(out)


def gen_combining(rng: random.Random, budget: int) -> str:
    out = []
    for _ in range(rng.randint(3, 25)):
        r = rng.random()
        if r < 0.3:
            base = rng.choice("aeiouAEIOUnNcCzZ")
            out.append(base + "".join(rng.choice(COMBINING) for _ in range(rng.randint(1, 6))))
        elif r < 0.5:
            out.append(rng.choice(MARKED_WORDS))
        elif r < 0.65:
            out.append(unicodedata.normalize("NFD", rng.choice(("café", "naïve", "Ångström", "Việt Nam", "Œuvre", "résumé", "Ελληνικά", "ǅemal", "ﬁne"))))
        elif r < 0.75:
            # marks with no base: after space, digit, punctuation, or at a line start
            out.append(rng.choice((" ", "1", ".", "\n", "'", "")) + "".join(rng.choice(COMBINING) for _ in range(rng.randint(1, 4))))
        elif r < 0.85:
            out.append("".join(rng.choice(("ʰ", "ˆ", "ー", "ـ", "ǅ", "ᾈ", "ʼ", "〻", "ꜰ", "Σ", "ς", "İ", "ı")) for _ in range(rng.randint(1, 8))))
        else:
            out.append(_word(rng))
        out.append(rng.choice((" ", " ", "", "\n", "-", "'s ")))
    return "".join(out)


def gen_numbers(rng: random.Random, budget: int) -> str:
    out = []
    for _ in range(rng.randint(5, 40)):
        r = rng.random()
        if r < 0.6:
            out.append(_number(rng))
        elif r < 0.7:
            out.append(f"{rng.randint(1, 12)}/{rng.randint(1, 31)}/{rng.randint(1900, 2100)}")
        elif r < 0.8:
            out.append(f"+1 ({rng.randint(100, 999)}) {rng.randint(100, 999)}-{rng.randint(1000, 9999)}")
        elif r < 0.9:
            out.append(rng.choice(DIGIT_SETS)[rng.randint(0, 9)] * rng.randint(1, 50))
        else:
            out.append(_word(rng) + _number(rng))
        out.append(rng.choice((" ", ", ", "\n", "", "%", "$", "km")))
    return "".join(out)


def gen_special_tokens(rng: random.Random, budget: int) -> str:
    out = []
    for _ in range(rng.randint(2, 12)):
        tok = rng.choice(SPECIAL_TOKENS)
        r = rng.random()
        if r < 0.4:
            out.append(f"{tok}{rng.choice(('user', 'assistant', 'system'))}\n{_sentence(rng)}<|im_end|>\n")
        elif r < 0.7:
            out.append(f"{_sentence(rng)} {tok} {_sentence(rng)}")
        else:
            out.append(tok * rng.randint(1, 5) + rng.choice(("", " ", "\n")))
    return "".join(out)


def gen_unicode_spaces(rng: random.Random, budget: int) -> str:
    out = []
    for _ in range(rng.randint(5, 40)):
        out.append(rng.choice((_word(rng), _number(rng), rng.choice(HANZI), rng.choice(PUNCT), rng.choice(EMOJI))))
        seps = UNICODE_SPACES if rng.random() < 0.8 else NOT_SPACES
        out.append("".join(rng.choice(seps) for _ in range(rng.randint(1, 5))))
    return "".join(out)


def gen_punctuation(rng: random.Random, budget: int) -> str:
    out = []
    for _ in range(rng.randint(5, 30)):
        out.append("".join(rng.choice(PUNCT) for _ in range(rng.randint(1, 12))))
        out.append(rng.choice((" ", "", "\n", "\r\n", "/", "//\n", _word(rng), " \n\n")))
    return "".join(out)


def gen_mixed(rng: random.Random, budget: int) -> str:
    """Short slices of every other kind, glued with awkward separators, so category
    boundaries (a mark after a space, an apostrophe after CJK, ...) occur often."""
    out = []
    for _ in range(rng.randint(4, 16)):
        gen = rng.choice(_UNIT_GENERATORS)
        unit = gen(rng, 400)
        if len(unit) > 300:
            start = rng.randrange(len(unit) - 200)
            unit = unit[start : start + rng.randint(1, 200)]
        out.append(unit)
        out.append(rng.choice(("", "", " ", "\n", "'", "\u00a0", "\u0301", "'s", "\u3000", "\r\n", "/")))
    return "".join(out)


_UNIT_GENERATORS: tuple[Callable[[random.Random, int], str], ...] = (
    gen_prose, gen_python, gen_rust, gen_js, gen_json, gen_logs, gen_cjk, gen_emoji,
    gen_base64, gen_char_run, gen_whitespace_run, gen_contractions, gen_combining,
    gen_numbers, gen_special_tokens, gen_unicode_spaces, gen_punctuation,
)

GENERATORS: dict[str, Callable[[random.Random, int], str]] = {
    "prose": gen_prose,
    "python": gen_python,
    "rust": gen_rust,
    "javascript": gen_js,
    "json": gen_json,
    "logs": gen_logs,
    "cjk": gen_cjk,
    "emoji": gen_emoji,
    "base64": gen_base64,
    "char_run": gen_char_run,
    "whitespace_run": gen_whitespace_run,
    "contractions": gen_contractions,
    "combining_marks": gen_combining,
    "numbers": gen_numbers,
    "special_tokens": gen_special_tokens,
    "unicode_spaces": gen_unicode_spaces,
    "punctuation": gen_punctuation,
    "mixed": gen_mixed,
}
KINDS = tuple(GENERATORS)


def _truncate_utf8(text: str, max_bytes: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    return data[:max_bytes].decode("utf-8", errors="ignore")


def _chunk_size(rng: random.Random, lo: int, hi: int) -> int:
    """Log-uniform in [lo, hi]: many small chunks, some near the maximum."""
    return int(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def generate_chunk(rng: random.Random, kind: str, target_bytes: int, max_bytes: int = MAX_CHUNK_BYTES) -> str:
    gen = GENERATORS[kind]
    parts: list[str] = []
    size = 0
    while size < target_bytes:
        unit = gen(rng, target_bytes - size)
        parts.append(unit)
        size += len(unit.encode("utf-8"))
    return _truncate_utf8("".join(parts), max_bytes)


def generate_corpus(
    seed: int = DEFAULT_SEED,
    total_bytes: int = DEFAULT_TOTAL_BYTES,
    min_chunk: int = MIN_CHUNK_BYTES,
    max_chunk: int = MAX_CHUNK_BYTES,
) -> list[Chunk]:
    """Chunks of every kind, in a seeded order, until ``total_bytes`` of UTF-8."""
    rng = random.Random(seed)
    chunks: list[Chunk] = []
    total = 0
    order: list[str] = []
    while total < total_bytes:
        if not order:
            order = list(KINDS)
            rng.shuffle(order)
        kind = order.pop()
        text = generate_chunk(rng, kind, _chunk_size(rng, min_chunk, max_chunk), max_chunk)
        chunk = Chunk(len(chunks), kind, text)
        chunks.append(chunk)
        total += chunk.nbytes
    return chunks


def generate_messages(
    count: int = 10_000,
    seed: int = DEFAULT_SEED + 1,
    min_bytes: int = 200,
    max_bytes: int = 4096,
) -> list[str]:
    """Chat-history-like messages (a few hundred bytes to a few KiB each), all distinct."""
    rng = random.Random(seed)
    pool = [generate_chunk(rng, kind, 24 * 1024) for kind in KINDS]
    messages = []
    for i in range(count):
        source = rng.choice(pool)
        n = _chunk_size(rng, min_bytes, max_bytes)
        start = rng.randrange(max(1, len(source) - n))
        role = rng.choice(("user", "assistant", "tool"))
        messages.append(f"[{i}] {role}: " + _truncate_utf8(source[start : start + n], n))
    return messages

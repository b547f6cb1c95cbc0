"""Write the benchmark corpora for `rust/examples/count_speed.rs`: each text as its UTF-8
length in bytes, a newline, then its bytes (the corpus holds every control character).

    python benches/dump_corpus.py /tmp/corpus.txt /tmp/messages.txt
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.corpus import generate_corpus, generate_messages  # noqa: E402

if __name__ == "__main__":
    corpus_path, messages_path = sys.argv[1:3]
    for path, texts in ((corpus_path, [c.text for c in generate_corpus()]), (messages_path, generate_messages(10_000))):
        Path(path).write_bytes(b"".join(b"%d\n%s" % (len(t.encode()), t.encode()) for t in texts))

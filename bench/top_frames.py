"""Top frames of a py-spy raw profile (`py-spy record -f raw`): self time, and inclusive time of our code and the stack.

    uv run python -m bench.top_frames PROFILE.txt [REGEX]

Prints the share of samples each frame was the innermost one (self), then the share of samples
each frame was anywhere on the stack (inclusive), for frames whose name matches REGEX (by default
the service's packages and the web, database and Redis libraries).
"""

from __future__ import annotations

import collections
import re
import sys

DEFAULT = (
    r"(commands|core|queries|fastapi|starlette|sqlalchemy/ext/asyncio|asyncpg/connection|arq|redis/asyncio/client"
    r"|orjson|pydantic|jwt)"
)


def top_frames(path: str, pattern: str = DEFAULT, limit: int = 25) -> list[str]:
    """The report's lines for one profile."""
    total = 0
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            stack, _, count = line.rstrip().rpartition(" ")
            if not stack:
                continue
            n = int(count)
            total += n
            frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
            for frame in set(frames):
                inclusive[frame] += n
            own[frames[-1]] += n
    wanted = re.compile(pattern)
    out = [f"samples: {total}", "--- self"]
    out += [f"{100 * n / total:5.1f}% {frame}" for frame, n in own.most_common(limit)]
    out.append("--- inclusive")
    out += [f"{100 * n / total:5.1f}% {frame}" for frame, n in inclusive.most_common(400) if wanted.search(frame)]
    return out


if __name__ == "__main__":
    print("\n".join(top_frames(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else DEFAULT)))

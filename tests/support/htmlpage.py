"""A parsed HTML page for the report tests: a small element tree on top of html.parser."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Dict, Iterator, List, Optional, Tuple


class Node:
    """One element (or a ``#text`` node) of the page."""

    def __init__(self, tag: str, attrs: Dict[str, str]) -> None:
        self.tag, self.attrs, self.children, self.text = tag, attrs, [], ""

    def iter(self, tag: Optional[str] = None) -> Iterator[Node]:
        """This node and every node below it (only those named ``tag`` if given), in document order."""
        if tag in (None, self.tag):
            yield self
        for child in self.children:
            yield from child.iter(tag)

    def all_text(self) -> str:
        return self.text + "".join(child.all_text() for child in self.children)

    def classes(self) -> List[str]:
        return self.attrs.get("class", "").split()

    def by_id(self, ident: str) -> Node:
        """The one element with this id (an id used twice is a broken link target)."""
        found = [n for n in self.iter() if n.attrs.get("id") == ident]
        assert len(found) == 1, f"id {ident!r}: {len(found)} elements"
        return found[0]


class _TreeBuilder(HTMLParser):
    VOID = {"meta", "br", "hr", "img", "input", "link"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in self.VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>: the page is not well nested"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        node = Node("#text", {})
        node.text = data
        self.stack[-1].children.append(node)


def parse(text: str) -> Node:
    """The page's tree; fails when an element is left open or closed out of order."""
    builder = _TreeBuilder()
    builder.feed(text)
    builder.close()
    assert [n.tag for n in builder.stack] == ["document"], "unclosed elements"
    return builder.root


def summary_rows(page: Node) -> List[Node]:
    """The <tr> rows of the table that follows the report's summary heading."""
    body = next(page.iter("body"))
    heading = page.by_id("summary")
    table = body.children[body.children.index(heading) + 1]
    assert table.tag == "table"
    return next(table.iter("tbody")).children


def histogram_bars(page: Node) -> List[List[Node]]:
    """Per histogram plot (<svg class="hist">), its bars."""
    return [
        [r for r in svg.iter("rect") if "bar" in r.classes()] for svg in page.iter("svg") if "hist" in svg.classes()
    ]

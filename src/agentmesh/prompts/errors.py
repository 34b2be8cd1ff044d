"""`PromptError`: the one error of the prompts layer, and its translation from Jinja.

Every failure (a bad file, bad front matter, a missing or mistyped input, an
undefined variable, a sandbox violation) is a :class:`PromptError` naming the
file and line, the template and, where there is one, the variable::

    prompts/plan.gemma.j2:12: template 'plan': undefined variable 'goal'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import TracebackType

from jinja2 import TemplateNotFound, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError

from agentmesh.prompts.bounded import RenderLimitExceeded

__all__ = ["PromptError", "from_render_error", "from_syntax_error"]


class PromptError(ValueError):
    """A prompt template cannot be loaded or rendered.

    Attributes:
        detail: What went wrong, without the location.
        template: Name of the template being loaded or rendered (``plan``), if any.
        variable: The input or template variable at fault, if any.
        line: 1-based line in ``file``, if known.
        file: The file where it went wrong (a variant, a partial or the generic
            template), as a path under the prompts folder, if known.
        limit: The :class:`~agentmesh.limits.RenderLimits` field a render
            exceeded (``max_chars``, ``max_seconds``, ``max_iterations``), if any.
    """

    def __init__(
        self,
        detail: str,
        *,
        template: str | None = None,
        variable: str | None = None,
        line: int | None = None,
        file: str | None = None,
        limit: str | None = None,
    ) -> None:
        self.detail = detail
        self.limit = limit
        self.template = template
        self.variable = variable
        self.line = line
        self.file = file
        where = f"{file}:{line}" if file and line is not None else file or ""
        parts = [where] if where else []
        if template is not None:
            parts.append(f"template {template!r}")
        parts.append(detail)
        super().__init__(": ".join(parts))

    def __str__(self) -> str:
        return str(self.args[0])

    def to_dict(self) -> dict[str, object]:
        """The error as a JSON-ready mapping (what ``--json`` prints)."""
        return {
            "type": "prompt_error",
            "message": str(self),
            "template": self.template,
            "variable": self.variable,
            "line": self.line,
            "file": self.file,
            "limit": self.limit,
        }


# Jinja's messages for undefined values and unsafe attributes (stable since Jinja 2).
_UNDEFINED_NAME = re.compile(r"^'(?P<name>[^']+)' is undefined$")
_NO_ATTRIBUTE = re.compile(r"has no (?:attribute|element) '?(?P<name>[^']+)'?$")
_UNSAFE = re.compile(r"^access to attribute '(?P<name>[^']+)' of")


def _innermost_template_frame(
    tb: TracebackType | None, files: Mapping[str, str]
) -> tuple[str | None, int | None]:
    """File and line of the innermost traceback frame Jinja rewrote to a template.

    Jinja replaces frames of compiled template code with frames whose code
    filename is the template's filename (our display path) and whose line is
    the template line; ``files`` holds those display paths.
    """
    found: tuple[str | None, int | None] = (None, None)
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename in files:
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


def _describe(exc: Exception) -> tuple[str, str | None]:
    """A one-line description of a render failure and the variable it names."""
    message = str(exc)
    if isinstance(exc, SecurityError):
        unsafe = _UNSAFE.search(message)
        return f"blocked by the sandbox: {message}", unsafe["name"] if unsafe else None
    if isinstance(exc, UndefinedError):
        undefined = _UNDEFINED_NAME.match(message)
        if undefined:
            return f"undefined variable {undefined['name']!r}", undefined["name"]
        attribute = _NO_ATTRIBUTE.search(message)
        name = attribute["name"] if attribute else None
        return f"undefined attribute {name!r} ({message})", name
    if isinstance(exc, TemplateNotFound):
        return f"template file {exc.name!r} is not in the prompts folder", None
    return f"{type(exc).__name__}: {message}", None


def from_render_error(exc: Exception, template: str, files: Mapping[str, str]) -> PromptError:
    """Translate an exception raised while rendering into a :class:`PromptError`.

    Args:
        exc: What Jinja (or code a template called) raised.
        template: The template name being rendered.
        files: Display paths of every file of the library (the filenames Jinja
            gave the template frames), mapped to their names in the folder.
    """
    if isinstance(exc, TemplateSyntaxError):
        return from_syntax_error(exc, template)
    file, line = _innermost_template_frame(exc.__traceback__, files)
    if isinstance(exc, RenderLimitExceeded):
        return PromptError(exc.detail, template=template, line=line, file=file, limit=exc.limit)
    detail, variable = _describe(exc)
    return PromptError(detail, template=template, variable=variable, line=line, file=file)


def from_syntax_error(exc: TemplateSyntaxError, template: str | None) -> PromptError:
    """Translate a Jinja syntax error (raised when compiling) into a :class:`PromptError`."""
    return PromptError(
        f"syntax error: {exc.message}", template=template, line=exc.lineno, file=exc.filename
    )

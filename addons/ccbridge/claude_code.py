"""Names Claude Code uses on the wire: its tools and its headers. A leaf: the proxy and the viewer read it.

The delegation tool is `Agent` in current CLIs and `Task` in older ones; both start a subagent.
"""

from __future__ import annotations

DELEGATION_TOOLS = ("Agent", "Task")
SHELL_TOOL = "Bash"
FILE_TOOLS = ("Read", "Write", "NotebookEdit")  # each names the file in `file_path`
WRITE_TOOL = "Write"
EDIT_TOOLS = ("Edit", "MultiEdit")  # `old_string`/`new_string`, MultiEdit as a list of `edits`
SEARCH_TOOLS = ("Grep", "Glob")  # each searches for `pattern`, optionally under `path`

SESSION_HEADER = "x-claude-code-session-id"
AGENT_HEADER = "x-claude-code-agent-id"  # only on a subagent's requests
PARENT_AGENT_HEADER = "x-claude-code-parent-agent-id"
# The first system block of every request; a subagent's says `cc_is_subagent=true` (also when no agent
# header is sent, as in older CLIs).
BILLING_PREFIX = "x-anthropic-billing-header:"
SUBAGENT_MARK = "cc_is_subagent=true"

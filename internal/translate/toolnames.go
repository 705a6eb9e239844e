package translate

import (
	"crypto/sha256"
	"encoding/hex"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// toolNameMax is the longest function name OpenAI's API takes
// (^[a-zA-Z0-9_-]{1,64}$). Anthropic's tools may have names of up to 128
// characters, and Claude Code's MCP tools (mcp__<server>__<tool>) often
// pass 64: sent as they are, OpenAI refuses the whole request.
const toolNameMax = 64

// ToolNames are the tools of a Messages request whose chat translation
// named them short (shortToolName), for the answer's tool calls to name
// them as the client does (ChatToMessage, MessagesStream.WithToolNames).
// nil when no name was long, as in most requests: nothing is computed or
// kept for them.
type ToolNames []toolName

type toolName struct{ short, long string }

// shortToolName is a name longer than toolNameMax as chat gets it: as
// much of it as fits, and a hash of all of it, so names with a common
// prefix (one MCP server's tools) stay apart. The same name always gets
// the same short one: tools, tool_choice and the history's tool calls
// agree without a table.
func shortToolName(name string) string {
	sum := sha256.Sum256([]byte(name))
	cut := toolNameMax - 9
	for cut > 0 && !utf8.RuneStart(name[cut]) {
		cut-- // not inside a character (names are bytes to OpenAI's limit)
	}
	return name[:cut] + "_" + hex.EncodeToString(sum[:4])
}

// chatToolName is a Messages tool name as chat gets it. A decision copy
// keeps a long name whole in its unread text: the classifiers read what
// an Anthropic-wire provider gets.
func chatToolName(name gjson.Result, u *untranslated) string {
	if len(name.Str) <= toolNameMax {
		return name.Str
	}
	u.add(name)
	return shortToolName(name.Str)
}

// original is the name the client gave the tool chat calls name: the long
// name it was shortened from, or name itself.
func (n ToolNames) original(name string) string {
	if len(n) == 0 || len(name) > toolNameMax {
		return name
	}
	for _, t := range n {
		if t.short == name {
			return t.long
		}
	}
	return name
}

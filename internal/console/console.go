// Package console is stellwerk's web console: one page, a script and a
// style sheet, embedded in the binary and served by the admin server under
// /console/ (docs/console.md). Nothing is fetched from elsewhere and there
// is no build step.
//
// The files hold no data and answer anyone. The page asks for an admin
// token, keeps it in the tab's sessionStorage (gone when the tab closes)
// and sends it as Authorization: Bearer on every call to the admin API,
// where the usual role guard decides; the live stream is read with fetch()
// for the same reason, since EventSource cannot send a header. A token is
// never put in a URL.
package console

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var files embed.FS

// policy lets the page load only its own script and style and talk only
// to its own origin; no inline script runs, no frame may embed it.
const policy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the console's files under /console/.
func Handler() http.Handler {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	fsrv := http.StripPrefix("/console/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", policy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		fsrv.ServeHTTP(w, r)
	})
}

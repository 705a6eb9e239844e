package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/xds"
)

const xdsUsage = `usage: stellwerk xds dump [--admin URL|HOST:PORT] [--config FILE] [--token-env NAME] [--json]

Prints what each Envoy connected to a running stellwerk was sent, accepted
and refused (with Envoy's error), from its admin API (GET /admin/xds; an
auditor, operator or admin token). --json prints the snapshot's clusters,
listeners and routes as well; secrets are named, never shown.
`

// adminTokenEnv is where the CLI finds an admin token by default.
const adminTokenEnv = "STELLWERK_ADMIN_TOKEN"

func runXDS(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "dump" {
		fmt.Fprint(stderr, xdsUsage)
		return ErrUsage
	}
	fs := flag.NewFlagSet("xds dump", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, xdsUsage)
		fs.PrintDefaults()
	}
	adminURL := fs.String("admin", "", "stellwerk's admin API, a URL or HOST:PORT as server.admin has it (default: server.admin of --config)")
	cfgPath := fs.String("config", defaultConfigPath(), "config file whose server.admin to ask (env STELLWERK_CONFIG)")
	tokenEnv := fs.String("token-env", adminTokenEnv, "environment variable holding the admin token")
	asJSON := fs.Bool("json", false, "print the whole dump as JSON, resources included")
	if err := fs.Parse(args[1:]); err != nil {
		return ErrUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return ErrUsage
	}
	base := *adminURL
	if base == "" {
		explicit := false // --config given: its file must be there
		fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
		var err error
		if base, err = configAdmin(*cfgPath, explicit || os.Getenv("STELLWERK_CONFIG") != ""); err != nil {
			return fmt.Errorf("xds dump: %w", err)
		}
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base // server.admin's form
	}
	token := strings.TrimSpace(os.Getenv(*tokenEnv))
	if token == "" {
		return fmt.Errorf("xds dump: set %s to an admin token (auditor, operator or admin)", *tokenEnv)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/admin/xds", nil)
	if err != nil {
		return fmt.Errorf("xds dump: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("xds dump: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("xds dump: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("xds dump: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	if *asJSON {
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			return fmt.Errorf("xds dump: %w", err)
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	var d xds.Dump
	if err := json.Unmarshal(body, &d); err != nil {
		return fmt.Errorf("xds dump: %w", err)
	}
	return printDump(stdout, d)
}

// printDump is the table: one line per Envoy node and resource type.
func printDump(w io.Writer, d xds.Dump) error {
	fmt.Fprintf(w, "snapshot %s: %d clusters, %d listeners, %d routes, %d secrets; %d Envoy streams\n\n",
		d.Version, len(d.Clusters), len(d.Listeners), len(d.Routes), len(d.Secrets), len(d.Nodes))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTREAM\tTYPE\tSENT\tACKED\tSTATE")
	for _, n := range d.Nodes {
		types := make([]string, 0, len(n.Types))
		for t := range n.Types {
			types = append(types, t)
		}
		sort.Strings(types)
		for _, t := range types {
			ts := n.Types[t]
			state := "current"
			switch {
			case ts.Acked != d.Version && ts.Sent == d.Version:
				state = "updating"
			case ts.Acked != d.Version:
				state = "behind"
			}
			for _, r := range n.Rejections {
				if r.Type == t {
					state = fmt.Sprintf("REJECTED %s at %s: %s", r.Version, r.At.Format(time.RFC3339), r.Error)
				}
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", n.Node, n.Stream, t, ts.Sent, ts.Acked, state)
		}
	}
	return tw.Flush()
}

// defaultAdmin is server.admin of the default config file, or the default.
// configAdmin is server.admin of the config at cfgPath; the default
// address when there is no such file and none was named.
func configAdmin(cfgPath string, named bool) (string, error) {
	c, err := config.Load(cfgPath)
	switch {
	case err == nil:
		return c.Server.Admin, nil
	case errors.Is(err, fs.ErrNotExist) && !named:
		return "127.0.0.1:9180", nil
	}
	return "", err
}

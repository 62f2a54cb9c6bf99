package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/dataconn"
	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/tokenstore"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "token",
		Usage: "create|list|revoke|rotate-key",
		Short: "Create, list and revoke access tokens",
		Long: `Access tokens are signed (Ed25519) and verified offline by the edge and the
tiles engine. A grant pairs a data connection with a source: a table
(public.countries), every table of a schema (public.*), everything (*), or
one SQL query text.

  meridian token create --grant local:public.countries --api maps,sql --ttl 720h
  meridian token list
  meridian token revoke <token-id or token>
  meridian token rotate-key`,
		CobraFunc: tokenCommand,
	})
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "connection",
		Usage: "add|list|remove",
		Short: "Manage data-warehouse connections",
		Long: `Data connections are the PostgreSQL/PostGIS databases that maps and SQL
requests run on. Credentials are encrypted at rest with MERIDIAN_SECRET_KEY.

  meridian connection add local --url postgres://reader:…@127.0.0.1:5432/data
  meridian connection list
  meridian connection remove local`,
		CobraFunc: connectionCommand,
	})
}

// sub adds a child command that runs fn with the loaded config.
func sub(parent *cobra.Command, use, short string, n needs, fn commandFunc, flags func(*cobra.Command)) {
	c := &cobra.Command{Use: use, Short: short}
	c.Flags().String("config", "", "JSON configuration file (MERIDIAN_* environment variables override it)")
	if flags != nil {
		flags(c)
	}
	c.RunE = func(cmd *cobra.Command, args []string) error {
		path, _ := cmd.Flags().GetString("config")
		return runCommand(parent.Name()+" "+cmd.Name(), path, n, func(ctx context.Context, cfg *Config, args []string) error {
			ctx = context.WithValue(ctx, flagsKey{}, cmd)
			return fn(ctx, cfg, args)
		}, args)
	}
	parent.AddCommand(c)
}

type flagsKey struct{}

func flagsOf(ctx context.Context) *cobra.Command { return ctx.Value(flagsKey{}).(*cobra.Command) }

func tokenCommand(cmd *cobra.Command) {
	n := needs{db: true, secret: true}
	sub(cmd, "create", "Create a token and print it", n, tokenCreate, func(c *cobra.Command) {
		c.Flags().StringArray("grant", nil, "CONNECTION:SOURCE, repeatable (source: schema.table, schema.*, * or a SQL query)")
		c.Flags().String("api", "maps,sql", "allowed APIs, comma-separated: maps, sql, imports, lds")
		c.Flags().Duration("ttl", 0, "lifetime, e.g. 720h; 0 means the token never expires")
		c.Flags().String("name", "", "label shown by list")
		c.Flags().String("owner", "cli", "owner recorded on the token")
		c.Flags().StringArray("referer", nil, "allowed browser origin, repeatable")
	})
	sub(cmd, "list", "List tokens", n, tokenList, nil)
	sub(cmd, "revoke", "Revoke a token by ID or by its full string", n, tokenRevoke, nil)
	sub(cmd, "rotate-key", "Start signing with a new key; tokens signed by old keys stay valid", n, tokenRotate, nil)
}

func tokenStore(ctx context.Context, cfg *Config, withBroker bool) (*node, *tokenstore.Store, error) {
	nd, err := openNode(ctx, cfg, "token", needs{db: true, secret: true}, withBroker)
	if err != nil {
		return nil, nil, err
	}
	var pub tokenstore.Publisher
	if nd.broker != nil {
		pub = nd.broker
	}
	return nd, tokenstore.New(nd.meta, nd.keyring, pub), nil
}

// parseGrant reads CONNECTION:SOURCE.
func parseGrant(s string) (grant.Grant, error) {
	conn, src, ok := strings.Cut(s, ":")
	if !ok || conn == "" || strings.TrimSpace(src) == "" {
		return grant.Grant{}, fmt.Errorf("--grant %q: want CONNECTION:SOURCE, e.g. local:public.countries", s)
	}
	return grant.Grant{Connection: conn, Source: strings.TrimSpace(src)}, nil
}

func tokenCreate(ctx context.Context, cfg *Config, _ []string) error {
	f := flagsOf(ctx).Flags()
	grants, _ := f.GetStringArray("grant")
	apis, _ := f.GetString("api")
	ttl, _ := f.GetDuration("ttl")
	name, _ := f.GetString("name")
	owner, _ := f.GetString("owner")
	referers, _ := f.GetStringArray("referer")
	spec := tokenstore.Spec{Owner: owner, Name: name, Referers: referers}
	if len(grants) == 0 {
		return fmt.Errorf("--grant is required, e.g. --grant local:public.countries")
	}
	for _, g := range grants {
		gr, err := parseGrant(g)
		if err != nil {
			return err
		}
		spec.Grants = append(spec.Grants, gr)
	}
	for _, a := range strings.Split(apis, ",") {
		if a = strings.TrimSpace(a); a != "" {
			spec.APIs = append(spec.APIs, grant.API(a))
		}
	}
	if ttl > 0 {
		spec.ExpiresAt = time.Now().Add(ttl).Truncate(time.Second)
	}
	nd, store, err := tokenStore(ctx, cfg, false)
	if err != nil {
		return err
	}
	defer nd.close()
	if _, err := store.EnsureSigningKey(ctx); err != nil {
		return err
	}
	tok, _, err := store.Create(ctx, spec)
	if err != nil {
		return err
	}
	fmt.Println(tok)
	return nil
}

func tokenList(ctx context.Context, cfg *Config, _ []string) error {
	nd, store, err := tokenStore(ctx, cfg, false)
	if err != nil {
		return err
	}
	defer nd.close()
	toks, err := store.List(ctx, "default")
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tGRANTS\tAPIS\tEXPIRES\tSTATE\tENDS WITH")
	now := time.Now()
	for _, t := range toks {
		var gs, as []string
		for _, g := range t.Grants {
			gs = append(gs, g.Connection+":"+g.Source)
		}
		for _, a := range t.APIs {
			as = append(as, string(a))
		}
		exp, state := "never", "active"
		if !t.ExpiresAt.IsZero() {
			exp = t.ExpiresAt.UTC().Format(time.RFC3339)
		}
		switch {
		case t.Revoked():
			state = "revoked"
		case t.Expired(now):
			state = "expired"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t…%s\n", t.ID, t.Name, strings.Join(gs, " "), strings.Join(as, ","), exp, state, t.Hint)
	}
	return tw.Flush()
}

func tokenRevoke(ctx context.Context, cfg *Config, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: meridian token revoke <token-id or token>")
	}
	nd, store, err := tokenStore(ctx, cfg, true)
	if err != nil {
		return err
	}
	defer nd.close()
	id := args[0]
	if strings.Count(id, ".") == 2 { // a whole token
		t, err := store.GetByToken(ctx, id)
		if err != nil {
			return err
		}
		id = t.ID
	}
	if err := store.Revoke(ctx, id); err != nil {
		return err
	}
	fmt.Printf("revoked %s\n", id)
	return nil
}

func tokenRotate(ctx context.Context, cfg *Config, _ []string) error {
	nd, store, err := tokenStore(ctx, cfg, false)
	if err != nil {
		return err
	}
	defer nd.close()
	kid, err := store.RotateKey(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("signing with key %s; older keys keep verifying their tokens\n", kid)
	return nil
}

func connectionCommand(cmd *cobra.Command) {
	n := needs{db: true, secret: true}
	sub(cmd, "add", "Register or update a connection: add NAME --url URL", n, connectionAdd, func(c *cobra.Command) {
		c.Flags().String("url", "", "PostgreSQL URL of the data database (credentials are encrypted at rest)")
		c.Flags().Int32("max-conns", 0, "pool size on each node (0: the default)")
		c.Flags().Bool("read-only", false, "run every statement in read-only transactions")
	})
	sub(cmd, "list", "List connections (without credentials)", n, connectionList, nil)
	sub(cmd, "remove", "Remove a connection: remove NAME", n, connectionRemove, nil)
}

func connStore(ctx context.Context, cfg *Config) (*node, *dataconn.Store, error) {
	nd, err := openNode(ctx, cfg, "connection", needs{db: true, secret: true}, false)
	if err != nil {
		return nil, nil, err
	}
	return nd, dataconn.New(nd.meta, nd.keyring), nil
}

func connectionAdd(ctx context.Context, cfg *Config, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: meridian connection add NAME --url URL")
	}
	f := flagsOf(ctx).Flags()
	u, _ := f.GetString("url")
	maxConns, _ := f.GetInt32("max-conns")
	ro, _ := f.GetBool("read-only")
	if u == "" {
		return fmt.Errorf("--url is required")
	}
	nd, store, err := connStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer nd.close()
	c := dataconn.Connection{Name: args[0], Kind: "postgres", URL: u}
	c.Options.MaxConns = maxConns
	c.Options.ReadOnly = ro
	_, created, err := store.Upsert(ctx, c)
	if err != nil {
		return err
	}
	verb := "updated"
	if created {
		verb = "added"
	}
	fmt.Printf("%s connection %s (%s)\n", verb, args[0], dataconn.RedactURL(u))
	return nil
}

func connectionList(ctx context.Context, cfg *Config, _ []string) error {
	nd, store, err := connStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer nd.close()
	cs, err := store.List(ctx, "default")
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tURL")
	for _, c := range cs {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Name, c.Kind, c.URL)
	}
	return tw.Flush()
}

func connectionRemove(ctx context.Context, cfg *Config, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: meridian connection remove NAME")
	}
	nd, store, err := connStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer nd.close()
	if err := store.Delete(ctx, args[0]); err != nil {
		return err
	}
	fmt.Printf("removed connection %s\n", args[0])
	return nil
}

// prepareTokens makes sure a signing key exists and gives the node a
// verifier kept current: keys and revocations loaded now, refreshed
// periodically, and revocations applied as they arrive on the broker (a
// subscription of this node's own, so every node gets every revocation).
func (nd *node) prepareTokens(ctx context.Context) error {
	store := tokenstore.New(nd.meta, nd.keyring, nd.broker)
	if _, err := store.EnsureSigningKey(ctx); err != nil {
		return err
	}
	w := tokenstore.NewWatcher(store, grant.NewVerifier(nil, nil, grant.VerifierConfig{}), tokenstore.WatcherConfig{}, nd.log.With("component", "tokens"))
	if err := w.Reload(ctx); err != nil {
		return fmt.Errorf("loading signing keys and revocations: %w", err)
	}
	nd.tokens = w
	nd.tokenStore = store
	nd.background = append(nd.background, component{"token-watcher", w.Run})
	if nd.broker != nil {
		sub := broker.Subscription{
			Topic:       broker.TopicTokenRevocations,
			Name:        "node-" + nd.cfg.Node + "-revocations",
			ExpireAfter: 7 * 24 * time.Hour,
		}
		nd.background = append(nd.background, component{"revocations", func(ctx context.Context) error {
			return nd.broker.Receive(ctx, sub, w.HandleRevocation)
		}})
	}
	return nil
}

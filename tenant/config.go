package tenant

import (
	"errors"
	"flag"
)

// Config configures how requests name their tenant.
type Config struct {
	// Default is the tenant of requests without an X-Scope-OrgID header.
	Default string `yaml:"default"`
	// RequireHeader refuses requests without the header instead.
	RequireHeader bool `yaml:"require_header"`
	// AuthFile maps credentials to tenants; empty trusts the tenant header.
	AuthFile string `yaml:"auth_file"`
}

// RegisterFlags registers the flags of c on fs, with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Default, "tenant.default", "anonymous", "Tenant of requests without an X-Scope-OrgID header.")
	fs.BoolVar(&c.RequireHeader, "tenant.require-header", false, "Reject requests without an X-Scope-OrgID header instead of using the default tenant.")
	fs.StringVar(&c.AuthFile, "tenant.auth-file", "", "YAML file of per-tenant bearer tokens or basic-auth credentials; with it every request must authenticate and its credentials name its tenant. Without it the X-Scope-OrgID header is trusted.")
}

// Validate reports a setting that cannot work.
func (c *Config) Validate() error {
	if !c.RequireHeader && c.Default == "" {
		return errors.New("tenant.default must be set unless tenant.require-header is")
	}
	return nil
}

// Resolver returns the resolver of the configured tenancy, with auth (nil
// when the header is trusted).
func (c *Config) Resolver(auth *Authenticator) Resolver {
	if c.RequireHeader {
		return Resolver{Auth: auth}
	}
	return Resolver{Default: c.Default, Auth: auth}
}

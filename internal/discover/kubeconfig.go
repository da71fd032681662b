package discover

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"
)

// Credentials are what a kubeconfig says about reaching the API as its
// user: the CA that signs the apiservers' certificates and the client
// certificate. Files are kept as paths so that a rotated client
// certificate (kubelet-client-current.pem) is read anew.
type Credentials struct {
	// Server is the kubeconfig's API address, tried last.
	Server string
	// CAData is the CA bundle, PEM.
	CAData []byte
	// CertFile and KeyFile, or CertData and KeyData, are the client
	// certificate and key.
	CertFile, KeyFile string
	CertData, KeyData []byte
}

// Equal reports whether c and o are the same credentials.
func (c Credentials) Equal(o Credentials) bool {
	return c.Server == o.Server && bytes.Equal(c.CAData, o.CAData) &&
		c.CertFile == o.CertFile && c.KeyFile == o.KeyFile &&
		bytes.Equal(c.CertData, o.CertData) && bytes.Equal(c.KeyData, o.KeyData)
}

// kubeconfig holds the fields of a kubeconfig file this package reads;
// like pkg/kubeadm, small own structs instead of client-go's clientcmd
// (which would bring its whole loading machinery into the binary).
type kubeconfig struct {
	CurrentContext string `json:"current-context"`
	Clusters       []struct {
		Name    string `json:"name"`
		Cluster struct {
			Server string `json:"server"`
			CAData []byte `json:"certificate-authority-data"`
			CA     string `json:"certificate-authority"`
		} `json:"cluster"`
	} `json:"clusters"`
	Users []struct {
		Name string `json:"name"`
		User struct {
			CertData []byte `json:"client-certificate-data"`
			KeyData  []byte `json:"client-key-data"`
			Cert     string `json:"client-certificate"`
			Key      string `json:"client-key"`
		} `json:"user"`
	} `json:"users"`
	Contexts []struct {
		Name    string `json:"name"`
		Context struct {
			Cluster string `json:"cluster"`
			User    string `json:"user"`
		} `json:"context"`
	} `json:"contexts"`
}

// ErrKubeconfig is wrapped by every error about a kubeconfig's contents.
var ErrKubeconfig = errors.New("bad kubeconfig")

// LoadKubeconfig reads the credentials of the current context of the
// kubeconfig at path. Relative file names are relative to its directory,
// as kubectl has them.
func LoadKubeconfig(path string) (Credentials, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Credentials{}, err
	}
	c, err := parseKubeconfig(data, filepath.Dir(path))
	if err != nil {
		return Credentials{}, fmt.Errorf("%s: %w", path, err)
	}
	if c.CAData == nil && c.caFile != "" {
		if c.CAData, err = os.ReadFile(c.caFile); err != nil {
			return Credentials{}, fmt.Errorf("%s: certificate-authority: %w", path, err)
		}
	}
	return c.Credentials, nil
}

type parsed struct {
	Credentials
	caFile string
}

func parseKubeconfig(data []byte, dir string) (parsed, error) {
	var kc kubeconfig
	if err := yaml.Unmarshal(data, &kc); err != nil {
		return parsed{}, fmt.Errorf("%w: %w", ErrKubeconfig, err)
	}
	bad := func(format string, args ...any) (parsed, error) {
		return parsed{}, fmt.Errorf("%w: "+format, append([]any{ErrKubeconfig}, args...)...)
	}
	var clusterName, userName string
	for _, c := range kc.Contexts {
		if c.Name == kc.CurrentContext {
			clusterName, userName = c.Context.Cluster, c.Context.User
		}
	}
	if clusterName == "" {
		return bad("no context %q", kc.CurrentContext)
	}
	var p parsed
	found := false
	for _, c := range kc.Clusters {
		if c.Name == clusterName {
			found = true
			p.Server, p.CAData, p.caFile = c.Cluster.Server, c.Cluster.CAData, abs(dir, c.Cluster.CA)
		}
	}
	if !found {
		return bad("no cluster %q", clusterName)
	}
	if p.CAData == nil && p.caFile == "" {
		return bad("cluster %q has no certificate authority", clusterName)
	}
	found = false
	for _, u := range kc.Users {
		if u.Name == userName {
			found = true
			p.CertData, p.KeyData = u.User.CertData, u.User.KeyData
			p.CertFile, p.KeyFile = abs(dir, u.User.Cert), abs(dir, u.User.Key)
		}
	}
	switch {
	case !found:
		return bad("no user %q", userName)
	case (p.CertData == nil && p.CertFile == "") || (p.KeyData == nil && p.KeyFile == ""):
		return bad("user %q has no client certificate and key", userName)
	}
	return p, nil
}

func abs(dir, name string) string {
	if name == "" || filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(dir, name)
}

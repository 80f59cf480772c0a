package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	b64 "encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pkiFiles are the PEM files the control plane and its clients use. They are
// generated once per sandbox directory and reused on restart, so kubeconfigs
// handed out earlier keep working.
type pkiFiles struct {
	CACert, CAKey           string
	ServingCert, ServingKey string
	AdminCert, AdminKey     string
	NodeCert, NodeKey       string
	SAKey                   string
}

func ensurePKI(dir string) (pkiFiles, error) {
	p := pkiFiles{
		CACert: filepath.Join(dir, "ca.crt"), CAKey: filepath.Join(dir, "ca.key"),
		ServingCert: filepath.Join(dir, "apiserver.crt"), ServingKey: filepath.Join(dir, "apiserver.key"),
		AdminCert: filepath.Join(dir, "admin.crt"), AdminKey: filepath.Join(dir, "admin.key"),
		NodeCert: filepath.Join(dir, "node.crt"), NodeKey: filepath.Join(dir, "node.key"),
		SAKey: filepath.Join(dir, "sa.key"),
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return p, err
	}
	now := time.Now()
	ca, caKey, err := loadCA(p)
	if err != nil {
		return p, err
	}
	if ca == nil {
		caKey, err = newKey()
		if err != nil {
			return p, err
		}
		caTmpl := &x509.Certificate{
			SerialNumber:          serial(),
			Subject:               pkix.Name{CommonName: "roster-sandbox-ca"},
			NotBefore:             now.Add(-time.Hour),
			NotAfter:              now.AddDate(10, 0, 0),
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
			BasicConstraintsValid: true,
			IsCA:                  true,
		}
		caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
		if err != nil {
			return p, err
		}
		ca, _ = x509.ParseCertificate(caDER)
		if err := writeCert(p.CACert, caDER); err != nil {
			return p, err
		}
		if err := writeKey(p.CAKey, caKey); err != nil {
			return p, err
		}
		// Leaves of an earlier CA would not verify any more.
		for _, f := range []string{p.ServingCert, p.AdminCert, p.NodeCert} {
			_ = os.Remove(f)
		}
	}
	// Each leaf is made when missing, so a directory made by an older
	// sandbox gains the newer ones (the node's) and keeps the rest.
	leaf := func(certPath, keyPath string, tmpl *x509.Certificate) error {
		if exists(certPath) && exists(keyPath) {
			return nil
		}
		key, err := newKey()
		if err != nil {
			return err
		}
		tmpl.SerialNumber = serial()
		tmpl.NotBefore = now.Add(-time.Hour)
		tmpl.NotAfter = now.AddDate(10, 0, 0)
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		if err := writeCert(certPath, der); err != nil {
			return err
		}
		return writeKey(keyPath, key)
	}
	// Pods reach the API server through the "kubernetes" Service, so its
	// ClusterIP (the first of the Service range) is a name of the server.
	if !certHasIP(p.ServingCert, kubernetesServiceIP) {
		_ = os.Remove(p.ServingCert)
	}
	if err := leaf(p.ServingCert, p.ServingKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1"), net.ParseIP(kubernetesServiceIP)},
	}); err != nil {
		return p, err
	}
	// Client certificates: CN is the user, O the groups.
	if err := leaf(p.AdminCert, p.AdminKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "roster-admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return p, err
	}
	// The kubelet's identity: the Node authorizer and NodeRestriction let it
	// touch only its own Node and the pods bound to it.
	if err := leaf(p.NodeCert, p.NodeKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "system:node:" + nodeName, Organization: []string{"system:nodes"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return p, err
	}
	if exists(p.SAKey) {
		return p, nil
	}
	saKey, err := newKey()
	if err != nil {
		return p, err
	}
	return p, writeKey(p.SAKey, saKey)
}

// kubernetesServiceIP is the ClusterIP the API server gives the "kubernetes"
// Service: the first address of serviceCIDR4.
const kubernetesServiceIP = "198.19.0.1"

// loadCA returns the directory's CA, or nil when it has none yet.
func loadCA(p pkiFiles) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	if !exists(p.CACert) || !exists(p.CAKey) {
		return nil, nil, nil
	}
	certPEM, err := os.ReadFile(p.CACert)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(p.CAKey)
	if err != nil {
		return nil, nil, err
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, errors.New("unreadable CA in " + filepath.Dir(p.CACert))
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func certHasIP(path, ip string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return false
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return false
	}
	for _, a := range cert.IPAddresses {
		if a.Equal(net.ParseIP(ip)) {
			return true
		}
	}
	return false
}

func newKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

func writeCert(path string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}

func loadPool(caPath string) (*x509.CertPool, error) {
	b, err := os.ReadFile(caPath)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New("no certificate in " + caPath)
	}
	return pool, nil
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

// writeKubeconfig writes an admin kubeconfig with the credentials embedded, so
// it can be copied elsewhere and still work.
func writeKubeconfig(path, server string, p pkiFiles) error {
	return writeKubeconfigFor(path, server, p.CACert, p.AdminCert, p.AdminKey, "roster-admin")
}

// writeKubeconfigFor writes a kubeconfig for the client certificate given.
func writeKubeconfigFor(path, server, caCert, cert, key, user string) error {
	read := func(f string) string {
		b, _ := os.ReadFile(f)
		return b64.StdEncoding.EncodeToString(b)
	}
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: roster-sandbox
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: roster-sandbox
  context:
    cluster: roster-sandbox
    user: %s
    namespace: default
current-context: roster-sandbox
`, server, read(caCert), user, read(cert), read(key), user)
	return os.WriteFile(path, []byte(cfg), 0o600)
}

package serve_test

import clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

// clientcmdapiConfig is a kubeconfig for the test's API server.
func clientcmdapiConfig(host string, ca, cert, key []byte, token string) *clientcmdapi.Config {
	c := clientcmdapi.NewConfig()
	c.Clusters["test"] = &clientcmdapi.Cluster{Server: host, CertificateAuthorityData: ca}
	c.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cert, ClientKeyData: key, Token: token}
	c.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "admin"}
	c.CurrentContext = "test"
	return c
}

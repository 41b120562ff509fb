// Package chartcheck renders and lints the Helm chart in deploy/helm and
// checks what it renders against the gateway's real configuration.
package chartcheck

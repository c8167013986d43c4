"""A local Kubernetes control plane: its Go build, its binaries, and running it on loopback.

What `trio-election control-plane build|path|start` and `trio-election demo` run, and what
`trio_election.testing.ControlPlane` is (re-exported there for users):

- `_binaries`: where kube-apiserver, etcd and kubectl (and the test peers) are looked for;
- `_build`: building them from Go modules into that folder;
- `_control_plane`: `ControlPlane`, etcd + kube-apiserver on loopback, with its certificates
  (`_pki`), its processes and their watchdog (`_processes`, `_reaper`) and kubeconfig files
  (`_kubeconfig`).

`_binaries` and `_build` are standard library only and import nothing but each other
(relatively): `scripts/build_control_plane.py` loads them by path, without this package.
Nothing is imported here, so that finding the binaries does not load the rest.
"""

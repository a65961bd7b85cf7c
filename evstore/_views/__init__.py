"""Views of the statuses for other systems: the kubelet's pods, containerd's checkpoint files
(import) and a node's CRI runtime (the recorder)."""

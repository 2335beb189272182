module docflow.local/cluster/pause

go 1.26

module github.com/ringmaster-ml/ringmaster/deploy/launch

go 1.26.0

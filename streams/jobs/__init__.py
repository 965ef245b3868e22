"""Job state: the lifecycle fold, the jobs table and its index, the job service, retention, callbacks and the jobs worker."""

"""Bad input and a misbehaving API, case by case, in virtual time over `FakeKubeApi`:
malformed kubeconfig and service-account files, malformed lock contents, API faults in the
middle of a term. Each case ends in a clear error naming the fix, or in a safe outcome."""

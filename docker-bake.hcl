# Lookout's three images in one command, from the one shared build:
#   docker buildx bake                  lookout-api:local, lookout-worker:local and lookout-beat:local
#   TAG=dev docker buildx bake api      one of them, with another tag
# Target "runtime" is services/Dockerfile (the locked dependencies and the package, as uid 10001); each image's
# own Dockerfile (services/<process>/Dockerfile) starts FROM it. Without bake, the same in two steps:
#   docker build -t lookout-runtime -f services/Dockerfile . && docker build -f services/api/Dockerfile .
variable "TAG" {
  default = "local"
}

variable "PYTHON_IMAGE" {
  default = "python:3.11-slim-bookworm"
}

group "default" {
  targets = ["api", "worker", "beat"]
}

target "runtime" {
  context    = "."
  dockerfile = "services/Dockerfile"
  args = {
    PYTHON_IMAGE = PYTHON_IMAGE
  }
}

# Each image's tags and labels; .github/workflows/images.yml replaces them with docker/metadata-action's.
target "meta-api" {
  tags = ["lookout-api:${TAG}"]
}

target "meta-worker" {
  tags = ["lookout-worker:${TAG}"]
}

target "meta-beat" {
  tags = ["lookout-beat:${TAG}"]
}

target "api" {
  inherits   = ["meta-api"]
  context    = "."
  dockerfile = "services/api/Dockerfile"
  contexts = {
    lookout-runtime = "target:runtime"
  }
}

target "worker" {
  inherits   = ["meta-worker"]
  context    = "."
  dockerfile = "services/worker/Dockerfile"
  contexts = {
    lookout-runtime = "target:runtime"
  }
}

target "beat" {
  inherits   = ["meta-beat"]
  context    = "."
  dockerfile = "services/beat/Dockerfile"
  contexts = {
    lookout-runtime = "target:runtime"
  }
}

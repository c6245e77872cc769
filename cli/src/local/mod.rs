//! Work on the developer's machine through the Docker Engine API: build,
//! test, tag and push release images (being written).

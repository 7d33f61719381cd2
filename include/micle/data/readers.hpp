#pragma once
// Every dataset reader and image decoder: CSV manifests of PNG/JPEG/DICOM files, MedMNIST
// .npz, IDX (Fashion-MNIST). They use zlib, libpng, libjpeg-turbo and DCMTK: link the
// CMake target micle::data (which also makes micle/micle.hpp include this header).
#include "micle/data/csv.hpp"
#include "micle/data/decode.hpp"
#include "micle/data/dicom.hpp"
#include "micle/data/fashion_mnist.hpp"
#include "micle/data/idx.hpp"
#include "micle/data/npz.hpp"
#include "micle/data/prepared.hpp"

// The chest X-ray datasets as shipped (data/chest_xray.hpp): small files in each layout,
// written here, parsed row by row with their masks; the label policy; views, studies and
// MICLe's study bags; official splits; labels matched by name across datasets; and every
// malformed row's error naming its file and line. Per-label AUC over the entries kept is
// checked against scikit-learn on the unmasked rows.
#include <zlib.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "testing.hpp"  // first: micle's headers whole, before data::check (inspect.hpp) is declared
#include "data/writers.hpp"
#include "micle/contrastive/pairs.hpp"
#include "micle/data/chest_xray.hpp"
#include "micle/data/inspect.hpp"
#include "micle/data/open.hpp"
#include "micle/train/metrics.hpp"
#include "micle/train/statistics.hpp"

using namespace micle;
using namespace micle::data;
namespace fs = std::filesystem;

namespace {
void write_text(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
}
void write_gz(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    gzFile f = gzopen(p.c_str(), "wb");
    REQUIRE(f != nullptr);
    REQUIRE(gzwrite(f, text.data(), unsigned(text.size())) == int(text.size()));
    gzclose(f);
}
/// A small grey JPEG (what CheXpert and MIMIC-CXR-JPG ship) or PNG (NIH).
void write_image(const fs::path& p, std::uint64_t seed) {
    fs::create_directories(p.parent_path());
    if (p.extension() == ".png")
        testing::write_png(p, 12, 10, 1, 8, testing::scan(12, 10, 1, 255, seed));
    else
        testing::write_jpeg(p, 12, 10, 1, testing::narrow(testing::scan(12, 10, 1, 255, seed)));
}
bool is_nan(float v) { return std::isnan(v); }
const float L = left_out;

/// root/CheXpert-v1.0-small/{train,valid}.csv and their images, as the download unpacks.
struct chexpert_files {
    testing::scratch s{"chexpert"};
    fs::path dir = s.dir / "CheXpert-v1.0-small";
    fs::path train = dir / "train.csv";
    static constexpr const char* header =
        "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,Lung Lesion,"
        "Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,Fracture,Support Devices\n";
    // Row findings: ..., Cardiomegaly (col 8), ..., Edema (11), Consolidation (12), ..., Atelectasis (14), ..., Pleural Effusion (16)
    chexpert_files() {
        const std::vector<std::string> rows{
            // patient 1, study 1: frontal and lateral; study 2: frontal
            "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,,,1.0,,,-1.0,0.0,,1.0,,,,,1.0",
            "CheXpert-v1.0-small/train/patient00001/study1/view2_lateral.jpg,Female,68,Lateral,,,,1.0,,,-1.0,0.0,,1.0,,,,,1.0",
            "CheXpert-v1.0-small/train/patient00001/study2/view1_frontal.jpg,Female,68,Frontal,PA,1.0,,0.0,,,,,,,,0.0,,,",
            // patient 2: a quoted path, uncertain effusion, blank elsewhere
            "\"CheXpert-v1.0-small/train/patient00002/study1/view1_frontal.jpg\",Male,41,Frontal,AP,,,,,,0.0,-1.0,,-1.0,,-1.0,,,",
            // patients 3-8: one frontal each, alternating labels
            "CheXpert-v1.0-small/train/patient00003/study1/view1_frontal.jpg,Male,50,Frontal,AP,,,1.0,,,1.0,1.0,,0.0,,1.0,,,",
            "CheXpert-v1.0-small/train/patient00004/study1/view1_frontal.jpg,Male,51,Frontal,AP,,,0.0,,,0.0,0.0,,1.0,,0.0,,,",
            "CheXpert-v1.0-small/train/patient00005/study1/view1_frontal.jpg,Female,52,Frontal,AP,,,1.0,,,1.0,0.0,,0.0,,1.0,,,",
            "CheXpert-v1.0-small/train/patient00006/study1/view1_frontal.jpg,Female,53,Frontal,AP,,,0.0,,,0.0,1.0,,1.0,,0.0,,,",
            "CheXpert-v1.0-small/train/patient00007/study1/view1_frontal.jpg,Male,54,Frontal,AP,,,1.0,,,0.0,1.0,,0.0,,1.0,,,",
            "CheXpert-v1.0-small/train/patient00008/study1/view1_frontal.jpg,Male,55,Frontal,AP,,,0.0,,,1.0,0.0,,1.0,,0.0,,,"};
        std::string text = header;
        for (const auto& r : rows) text += r + "\n";
        write_text(train, text);
        write_text(dir / "valid.csv", std::string(header) +
                                          "CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg,Male,73,Frontal,AP,"
                                          ",,1.0,,,0.0,0.0,,0.0,,1.0,,,\n"
                                          "CheXpert-v1.0-small/valid/patient64542/study1/view1_frontal.jpg,Male,70,Frontal,PA,"
                                          ",,0.0,,,1.0,1.0,,1.0,,0.0,,,\n");
        std::uint64_t seed = 1;
        for (const auto* csv : {"train.csv", "valid.csv"}) {
            std::ifstream in(dir / csv);
            std::string line;
            std::getline(in, line);
            while (std::getline(in, line)) {
                auto path = line.substr(0, line.find(".jpg") + 4);
                if (path.front() == '"') path = path.substr(1);
                write_image(s.dir / path, seed++);
            }
        }
    }
};

/// A MIMIC-CXR-JPG root: gzipped metadata (as PhysioNet ships it), plain labels and split.
struct mimic_files {
    testing::scratch s{"mimic"};
    mimic_files() {
        write_gz(s.dir / "mimic-cxr-2.0.0-metadata.csv.gz",
                 "dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns\n"
                 "d1,10000032,50414267,CHEST (PA AND LAT),PA,3056,2544\n"
                 "d2,10000032,50414267,CHEST (PA AND LAT),LATERAL,3056,2544\n"
                 "d3,10000032,53189527,CHEST (PA AND LAT),AP,3056,2544\n"
                 "d4,11000011,51000001,CHEST (PORTABLE AP),AP,3056,2544\n"
                 "d5,12000022,52000002,CHEST (PA AND LAT),,3056,2544\n");
        write_text(s.dir / "mimic-cxr-2.0.0-chexpert.csv",
                   "subject_id,study_id,Atelectasis,Cardiomegaly,Consolidation,Edema,Enlarged Cardiomediastinum,Fracture,"
                   "Lung Lesion,Lung Opacity,No Finding,Pleural Effusion,Pleural Other,Pneumonia,Pneumothorax,Support Devices\n"
                   "10000032,50414267,,,,,,,,,1.0,,,,,\n"
                   "10000032,53189527,1.0,-1.0,,0.0,,,,,,1.0,,,,\n"
                   "11000011,51000001,0.0,1.0,-1.0,,,,,,,0.0,,,,\n");  // 52000002 has no labels row
        write_text(s.dir / "mimic-cxr-2.0.0-split.csv",
                   "dicom_id,study_id,subject_id,split\nd1,50414267,10000032,train\nd2,50414267,10000032,train\n"
                   "d3,53189527,10000032,train\nd4,51000001,11000011,validate\nd5,52000002,12000022,test\n");
        const std::pair<const char*, const char*> images[] = {{"p10/p10000032/s50414267", "d1"}, {"p10/p10000032/s50414267", "d2"},
                                                              {"p10/p10000032/s53189527", "d3"}, {"p11/p11000011/s51000001", "d4"},
                                                              {"p12/p12000022/s52000002", "d5"}};
        std::uint64_t seed = 20;
        for (const auto& [folder, id] : images) write_image(s.dir / "files" / folder / (std::string(id) + ".jpg"), seed++);
    }
};

/// NIH ChestX-ray14: Data_Entry_2017.csv with its trailing comma, images in images/ and
/// images_002/images/, the official test list.
struct nih_files {
    testing::scratch s{"nih"};
    fs::path csv = s.dir / "Data_Entry_2017.csv";
    nih_files() {
        write_text(csv,
                   "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
                   "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],\n"
                   "00000001_000.png,Cardiomegaly,0,1,58,M,PA,2682,2749,0.143,0.143,\n"
                   "00000001_001.png,Cardiomegaly|Emphysema,1,1,58,M,PA,2894,2729,0.143,0.143,\n"
                   "00000002_000.png,No Finding,0,2,81,M,PA,2500,2048,0.171,0.171,\n"
                   "00000003_000.png,Atelectasis|Effusion|Pleural_Thickening,0,3,74,F,AP,2500,2048,0.168,0.168,\n"
                   "00000004_000.png,Edema,0,4,60,F,PA,2500,2048,0.168,0.168,\n"
                   "00000005_000.png,Consolidation|Effusion,0,5,61,F,AP,2500,2048,0.168,0.168,\n");
        write_text(s.dir / "test_list.txt", "00000004_000.png\n00000005_000.png\n");
        write_text(s.dir / "train_val_list.txt", "00000001_000.png\n00000001_001.png\n00000002_000.png\n00000003_000.png\n");
        write_image(s.dir / "images" / "00000001_000.png", 40);
        write_image(s.dir / "images" / "00000001_001.png", 41);
        write_image(s.dir / "images" / "00000002_000.png", 42);
        write_image(s.dir / "images_002" / "images" / "00000003_000.png", 43);  // Kaggle's layout
        write_image(s.dir / "images_002" / "images" / "00000004_000.png", 44);
        write_image(s.dir / "images" / "00000005_000.png", 45);
    }
};

/// The targets of sample i.
std::vector<float> row(const dataset& d, std::int64_t i) {
    return {d.targets.begin() + i * d.num_classes, d.targets.begin() + (i + 1) * d.num_classes};
}
/// Equal with NaN equal to NaN (left out).
bool same(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](float x, float y) { return x == y || (is_nan(x) && is_nan(y)); });
}
}  // namespace

TEST_CASE("CheXpert: train.csv read row by row, uncertain and blank left out, valid.csv the test split") {
    chexpert_files f;
    const auto d = read_chexpert(f.train);
    REQUIRE(d.size() == 12);
    CHECK(d.task == task_kind::multilabel);
    CHECK(d.class_names == chexpert5());  // the default: Atelectasis, Cardiomegaly, Consolidation, Edema, Pleural Effusion
    // Row by row, the five in that order (Atelectasis col 14, Cardiomegaly 8, Consolidation 12, Edema 11, Effusion 16).
    CHECK(same(row(d, 0), {1, 1, 0, L, L}));
    CHECK(same(row(d, 1), {1, 1, 0, L, L}));
    CHECK(same(row(d, 2), {L, 0, L, L, 0}));
    CHECK(same(row(d, 3), {L, L, L, 0, L}));  // the quoted path's row: -1.0 and blanks
    CHECK(same(row(d, 4), {0, 1, 1, 1, 1}));
    CHECK(same(row(d, 10), {0, 1, 0, 0, 1}));  // valid.csv's first row
    using S = label_state;
    CHECK(std::vector<S>(d.label_states.begin() + 15, d.label_states.begin() + 20) ==
          std::vector<S>{S::uncertain, S::missing, S::uncertain, S::negative, S::uncertain});
    // Patients and studies from the path; names give file and line.
    CHECK(d.patients[0] == d.patients[1]);
    CHECK(d.patients[1] == d.patients[2]);
    CHECK(d.patients[3] != d.patients[0]);
    CHECK(d.studies[0] == d.studies[1]);
    CHECK(d.studies[2] != d.studies[0]);
    CHECK(std::set<std::int64_t>(d.studies.begin(), d.studies.end()).size() == 11);
    CHECK(d.names[0].find("train.csv:2 (") != std::string::npos);
    CHECK(d.names[10].find("valid.csv:2 (") != std::string::npos);
    CHECK(d.load(0).height == 10);  // the image behind the path decodes
    // Splits: valid.csv is test; train.csv's patients split into train and val, none in two.
    CHECK(d.splits[10] == "test");
    CHECK(d.splits[11] == "test");
    std::map<std::int64_t, std::set<std::string>> split_of;
    for (std::int64_t i = 0; i < 10; ++i) {
        CHECK((d.splits[std::size_t(i)] == "train" || d.splits[std::size_t(i)] == "val"));
        split_of[d.patients[std::size_t(i)]].insert(d.splits[std::size_t(i)]);
    }
    for (const auto& [p, splits] : split_of) CHECK(splits.size() == 1);
    // Through open_split, with the prefix or found by the header.
    const auto test = open_split("chexpert:" + f.train.string(), "test");
    CHECK(test.size() == 2);
    CHECK(open_split(f.train.string(), "test").size() == 2);
    open_options halves;  // the rest split by patient in train:val of these fractions
    halves.fractions = {0.5, 0.5, 0.0};
    const auto tr = open_split(f.train.string(), "train", halves), va = open_split(f.train.string(), "val", halves);
    CHECK(tr.size() + va.size() == 10);
    CHECK(va.size() >= 1);
    CHECK(chest_source(f.train.string())->layout == chest_layout::chexpert);
}

TEST_CASE("CheXpert: the label policy - --uncertain ones/zeros, --missing zeros, --labels all and lists") {
    chexpert_files f;
    chest_options o;
    o.policy.uncertain = uncertain_policy::ones;
    CHECK(same(row(read_chexpert(f.train, o), 3), {1, L, 1, 0, 1}));
    o.policy.uncertain = uncertain_policy::zeros;
    o.policy.missing_zeros = true;
    CHECK(same(row(read_chexpert(f.train, o), 3), {0, 0, 0, 0, 0}));
    o = {};
    o.policy.labels = "all";
    const auto all = read_chexpert(f.train, o);
    CHECK(all.num_classes == 14);
    CHECK(all.class_names == chexpert_findings());
    CHECK(same(row(all, 2), {1, L, 0, L, L, L, L, L, L, L, 0, L, L, L}));  // No Finding 1.0, Cardiomegaly 0.0, Effusion 0.0
    o.policy.labels = "edema,Support_Devices,effusion";  // by key: case, '_' and NIH's name
    const auto three = read_chexpert(f.train, o);
    CHECK(three.class_names == std::vector<std::string>{"Edema", "Support Devices", "Pleural Effusion"});
    CHECK(same(row(three, 0), {L, 1, L}));
    o.policy.labels = "Edema,Hernia";
    CHECK_THROWS_WITH_AS(read_chexpert(f.train, o), doctest::Contains("has no label 'Hernia' (it has: No Finding,"), value_error);
}

TEST_CASE("CheXpert: --views and study bags for MICLe") {
    chexpert_files f;
    chest_options o;
    o.views = view_filter::frontal;
    const auto frontal = read_chexpert(f.train, o);
    CHECK(frontal.size() == 11);
    o.views = view_filter::lateral;
    const auto lateral = read_chexpert(f.train, o);
    REQUIRE(lateral.size() == 1);
    CHECK(lateral.names[0].find("view2_lateral.jpg") != std::string::npos);
    // Bags: patient 1 is one patient bag of 3 images, or two study bags (2 and 1 images).
    const auto d = read_chexpert(f.train);
    const auto aug = augment_config::eval(8);
    const contrastive::multi_instance by_patient(d, aug, 1, 0), by_study(d, aug, 1, 0, contrastive::bag_by::study);
    CHECK(by_patient.units() == 10);
    CHECK(by_study.units() == 11);
    CHECK(std::count_if(by_study.bags().begin(), by_study.bags().end(), [](const auto& b) { return b.size() == 2; }) == 1);
    // The loss's groups stay patients: the study bag's two views carry patient 1's id.
    const auto batch = by_study.make_batch(0, 0, 11);
    for (std::size_t r = 0; r < batch.groups.size(); ++r) CHECK(batch.groups[r] == d.patients[std::size_t(batch.samples[r])]);
    // NIH has no studies: bags are patients, and asking for studies says so.
    nih_files n;
    CHECK_THROWS_WITH_AS(contrastive::multi_instance(read_nih(n.csv), aug, 1, 0, contrastive::bag_by::study),
                         doctest::Contains("has no study ids, so bags can only be patients"), value_error);
}

TEST_CASE("CheXpert: malformed rows are data errors naming the file and line") {
    struct bad_row {
        int line;
        const char* text;
        const char* error;
    };
    for (const bad_row& b : {
             bad_row{4, "CheXpert-v1.0-small/train/patient00001/study2/view1_frontal.jpg,Female,68,Frontal,PA,,,2.0,,,,,,,,0.0,,,",
                     "train.csv:4: label 'Cardiomegaly' has '2.0' (1.0, 0.0, -1.0 or blank expected)"},
             bad_row{5, "CheXpert-v1.0-small/train/patient00002/study1/view9_frontal.jpg,Male,41,Frontal,AP,,,,,,0.0,-1.0,,-1.0,,-1.0,,,",
                     "CheXpert-v1.0-small/train/patient00002/study1/view9_frontal.jpg does not exist"},
             bad_row{3, "CheXpert-v1.0-small/train/someone/study1/view2_lateral.jpg,Female,68,Lateral,,,,1.0,,,-1.0,0.0,,1.0,,,,,1.0",
                     "train.csv:3: path CheXpert-v1.0-small/train/someone/study1/view2_lateral.jpg has no patientNNNNN folder"},
             bad_row{6, "CheXpert-v1.0-small/train/patient00003/study1/view1_frontal.jpg,Male,50", "train.csv:6: 3 fields, the header has 19"},
             bad_row{2, "elsewhere/x/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,,,1.0,,,-1.0,0.0,,1.0,,,,,1.0",
                     "train.csv:2: image elsewhere/x/patient00001/study1/view1_frontal.jpg is in none of"}}) {
        CAPTURE(b.text);
        const chexpert_files fresh;
        std::ifstream in(fresh.train);
        std::string text, line;
        for (int n = 1; std::getline(in, line); ++n) text += (n == b.line ? std::string(b.text) : line) + "\n";
        in.close();
        write_text(fresh.train, text);
        CHECK_THROWS_WITH_AS(read_chexpert(fresh.train), doctest::Contains(b.error), data_error);
        if (b.line == 5) CHECK_THROWS_WITH_AS(read_chexpert(fresh.train), doctest::Contains("train.csv:5: image "), data_error);
    }
}

TEST_CASE("CheXpert: paths relative to the CSV's folder itself") {
    chexpert_files f;
    // The same CSV one level up, beside CheXpert-v1.0-small/: paths are relative to its folder.
    std::ifstream in(f.train);
    std::stringstream text;
    text << in.rdbuf();
    write_text(f.s.dir / "train.csv", text.str());
    const auto d = read_chexpert(f.s.dir / "train.csv");
    CHECK(d.size() == 10);  // no valid.csv beside it: no official split
    CHECK(d.splits.empty());
    CHECK(d.load(9).width == 12);
}

TEST_CASE("MIMIC-CXR-JPG: metadata (gzipped), per-study labels, the official split, views") {
    mimic_files f;
    const auto d = read_mimic_cxr(f.s.dir);
    REQUIRE(d.size() == 5);
    CHECK(d.class_names == chexpert5());
    CHECK(same(row(d, 0), {L, L, L, L, L}));  // study 50414267: only No Finding
    CHECK(same(row(d, 1), {L, L, L, L, L}));
    CHECK(same(row(d, 2), {1, L, L, 0, 1}));  // Cardiomegaly -1.0, Consolidation blank
    CHECK(same(row(d, 3), {0, 1, L, L, 0}));
    CHECK(same(row(d, 4), {L, L, L, L, L}));  // a study without a labels row: all missing
    CHECK(std::all_of(d.label_states.begin() + 20, d.label_states.end(), [](label_state s) { return s == label_state::missing; }));
    CHECK(d.splits == std::vector<std::string>{"train", "train", "train", "val", "test"});
    CHECK(d.patients[0] == d.patients[2]);
    CHECK(d.studies[0] == d.studies[1]);
    CHECK(d.studies[0] != d.studies[2]);
    CHECK(d.names[3].find("mimic-cxr-2.0.0-metadata.csv.gz:5 (") != std::string::npos);
    CHECK(d.load(3).width == 12);
    chest_options o;
    o.policy.missing_zeros = true;
    o.policy.uncertain = uncertain_policy::ones;
    CHECK(same(row(read_mimic_cxr(f.s.dir, o), 2), {1, 1, 0, 0, 1}));
    o = {};
    o.views = view_filter::frontal;  // PA and AP; the blank view is neither
    CHECK(read_mimic_cxr(f.s.dir, o).size() == 3);
    o.views = view_filter::lateral;
    CHECK(read_mimic_cxr(f.s.dir, o).size() == 1);
    // By prefix or by the folder's files; each split as the split file says.
    CHECK(open_split("mimic-cxr:" + f.s.dir.string(), "val").size() == 1);
    CHECK(open_split(f.s.dir.string(), "train").size() == 3);
    SUBCASE("errors name the file and line") {
        write_text(f.s.dir / "mimic-cxr-2.0.0-chexpert.csv",
                   "subject_id,study_id,Atelectasis,Cardiomegaly,Consolidation,Edema,Pleural Effusion\n"
                   "10000032,50414267,,,,,\n10000032,53189527,1.0,yes,,0.0,\n");
        CHECK_THROWS_WITH_AS(read_mimic_cxr(f.s.dir), doctest::Contains("mimic-cxr-2.0.0-chexpert.csv:3: label 'Cardiomegaly' has 'yes'"),
                             data_error);
        write_text(f.s.dir / "mimic-cxr-2.0.0-chexpert.csv",
                   "subject_id,study_id,Atelectasis,Cardiomegaly,Consolidation,Edema,Pleural Effusion\n10000032,50414267,,,,,\n");
        fs::remove(f.s.dir / "files/p11/p11000011/s51000001/d4.jpg");
        CHECK_THROWS_WITH_AS(read_mimic_cxr(f.s.dir), doctest::Contains("mimic-cxr-2.0.0-metadata.csv.gz:5: image "), data_error);
        fs::remove(f.s.dir / "mimic-cxr-2.0.0-metadata.csv.gz");
        CHECK_THROWS_WITH_AS(read_mimic_cxr(f.s.dir), doctest::Contains("no mimic-cxr-2.0.0-metadata.csv(.gz)"), data_error);
    }
}

TEST_CASE("NIH ChestX-ray14: |-joined findings, No Finding, images_NNN/images, the official test list") {
    nih_files f;
    const auto d = read_nih(f.csv);
    REQUIRE(d.size() == 6);
    CHECK(d.class_names == nih_findings());  // all 14 by default
    CHECK(d.label_states.size() == 6 * 14);
    CHECK(std::none_of(d.targets.begin(), d.targets.end(), is_nan));  // NIH has no uncertain or missing labels
    auto positives = [&](std::int64_t i) {
        std::vector<std::string> out;
        for (std::int64_t c = 0; c < 14; ++c)
            if (d.targets[std::size_t(i * 14 + c)] == 1.0f) out.push_back(d.class_names[std::size_t(c)]);
        return out;
    };
    CHECK(positives(1) == std::vector<std::string>{"Cardiomegaly", "Emphysema"});
    CHECK(positives(2).empty());
    CHECK(positives(3) == std::vector<std::string>{"Atelectasis", "Effusion", "Pleural_Thickening"});
    CHECK(d.patients[0] == d.patients[1]);  // follow-ups of patient 1: one bag
    CHECK(d.studies.empty());
    CHECK(d.load(3).width == 12);  // from images_002/images/
    CHECK(d.splits[4] == "test");
    CHECK(d.splits[5] == "test");
    for (std::size_t i = 0; i < 4; ++i) CHECK((d.splits[i] == "train" || d.splits[i] == "val"));
    // chexpert5 on NIH: Effusion is Pleural Effusion.
    chest_options o;
    o.policy.labels = "chexpert5";
    const auto five = read_nih(f.csv, o);
    CHECK(five.class_names == std::vector<std::string>{"Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion"});
    CHECK(same(row(five, 5), {0, 0, 1, 0, 1}));
    o = {};
    o.views = view_filter::lateral;
    CHECK_THROWS_WITH_AS(read_nih(f.csv, o), doctest::Contains("no images with view lateral"), data_error);
    CHECK(open_split("nih:" + f.csv.string(), "test").size() == 2);
    CHECK(chest_source(f.csv.string())->layout == chest_layout::nih);
    SUBCASE("an unknown finding") {
        std::ofstream(f.csv, std::ios::app) << "00000006_000.png,Atelectasis|Cancer,0,6,61,F,AP,2500,2048,0.168,0.168,\n";
        CHECK_THROWS_WITH_AS(read_nih(f.csv), doctest::Contains("Data_Entry_2017.csv:8: finding 'Cancer' is not one of ChestX-ray14's 14"),
                             data_error);
    }
    SUBCASE("a missing image") {
        std::ofstream(f.csv, std::ios::app) << "00000006_000.png,Hernia,0,6,61,F,AP,2500,2048,0.168,0.168,\n";
        CHECK_THROWS_WITH_AS(read_nih(f.csv), doctest::Contains("Data_Entry_2017.csv:8: image 00000006_000.png is in none of"), data_error);
    }
}

TEST_CASE("labels matched by name: a CheXpert model's labels on NIH ChestX-ray14") {
    nih_files f;
    const auto nih = read_nih(f.csv);
    std::vector<std::string> absent;
    auto model = chexpert5();
    model.push_back("Support Devices");
    const auto m = map_labels(nih, model, &absent);
    CHECK(m.class_names == model);
    CHECK(absent == std::vector<std::string>{"Support Devices"});
    // Pleural Effusion takes NIH's Effusion; Support Devices is left out everywhere.
    CHECK(same(row(m, 3), {1, 0, 0, 0, 1, L}));
    CHECK(same(row(m, 5), {0, 0, 1, 0, 1, L}));
    const auto counts = count_labels(m);
    CHECK(counts[4].positive == 2);
    CHECK(counts[5].missing == 6);
    CHECK(counts[5].left_out == 6);
    CHECK(label_key("Pleural_Thickening") == "pleural thickening");
    CHECK(label_key(" Effusion ") == "pleural effusion");
}

TEST_CASE("micle check's per-label counts: positive, negative, uncertain, missing and left out") {
    chexpert_files f;
    const auto d = read_chexpert(f.train);
    const auto c = count_labels(d);
    REQUIRE(c.size() == 5);
    // Edema over the 12 rows: 1 uncertain... rows: -1,-1,blank,0,1,0,1,0,0,1 (train) 0,1 (valid)
    CHECK(c[3].positive == 4);
    CHECK(c[3].negative == 5);
    CHECK(c[3].uncertain == 2);
    CHECK(c[3].missing == 1);
    CHECK(c[3].left_out == 3);
    char buf[8192] = {};
    std::FILE* out = fmemopen(buf, sizeof buf - 1, "w");
    check("chexpert:" + f.train.string(), {}, 1, out);
    std::fclose(out);
    const std::string text = buf;
    CHECK(text.find("Edema: ") != std::string::npos);
    CHECK(text.find("labels (positive / negative / uncertain / missing; left out of loss and metrics)") != std::string::npos);
    CHECK(text.find("  test: 2 images, 2 patients, 0 unreadable") != std::string::npos);
    CHECK(text.find("every image decodes") != std::string::npos);
}

TEST_CASE("masked metrics: per-label AUC and accuracy over the entries kept equal scikit-learn's on the unmasked rows") {
    // 40 samples x 3 labels, a third of the entries left out; label 2 is left out on every
    // sample but 3 (all positive), so its AUC is undefined.
    const std::int64_t n = 40, k = 3;
    const auto scores = testing::random_values(n * k, 7, 0.0f, 1.0f);
    auto t = testing::random_values(n * k, 8, 0.0f, 1.0f), m = testing::random_values(n * k, 9, 0.0f, 1.0f);
    for (std::size_t e = 0; e < t.size(); ++e) {
        t[e] = (t[e] + 0.3f * scores[e]) > 0.6f ? 1.0f : 0.0f;
        if (m[e] < 0.33f || (e % 3 == 2 && e > 9)) t[e] = left_out;
    }
    const auto r = metrics::multilabel(scores, t, k);
    CHECK(std::isnan(r.auc_per_class[2]));
    CHECK(r.n_per_class[2] <= 3);
    // scikit-learn on each label's unmasked rows.
    testing::scratch s("masked-auc");
    std::ofstream csv(s.dir / "scores.csv");
    csv.precision(9);
    for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t c = 0; c < k; ++c)
            csv << (c ? "," : "") << scores[std::size_t(i * k + c)] << "," << (is_nan(t[std::size_t(i * k + c)]) ? "nan" : std::to_string(int(t[std::size_t(i * k + c)])))
                << (c + 1 == k ? "\n" : "");
    csv.close();
    write_text(s.dir / "auc.py",
               "import sys, numpy as np\n"
               "from sklearn.metrics import roc_auc_score\n"
               "a = np.loadtxt(sys.argv[1] + '/scores.csv', delimiter=',')\n"
               "out = []\nhit = 0\nall = 0\n"
               "for c in range(a.shape[1] // 2):\n"
               "    s, t = a[:, 2 * c], a[:, 2 * c + 1]\n"
               "    keep = ~np.isnan(t)\n"
               "    hit += ((s[keep] >= 0.5) == (t[keep] >= 0.5)).sum(); all += keep.sum()\n"
               "    y = t[keep]\n"
               "    out.append(repr(roc_auc_score(y, s[keep])) if 0 < y.sum() < len(y) else 'nan')\n"
               "    out.append(str(int(keep.sum())))\n"
               "out.append(repr(hit / all))\n"
               "open(sys.argv[1] + '/auc.txt', 'w').write(' '.join(out))\n");
    const std::string cmd = std::string(MICLE_TEST_PYTHON) + " " + (s.dir / "auc.py").string() + " " + s.dir.string();
    REQUIRE_MESSAGE(std::system(cmd.c_str()) == 0, "scikit-learn (python3-sklearn, scripts/setup installs it) failed: ", cmd);
    std::ifstream in(s.dir / "auc.txt");
    for (std::int64_t c = 0; c < k; ++c) {
        std::string auc;
        std::int64_t kept = 0;
        in >> auc >> kept;
        CAPTURE(c);
        CHECK(r.n_per_class[std::size_t(c)] == kept);
        if (auc == "nan")
            CHECK(std::isnan(r.auc_per_class[std::size_t(c)]));
        else
            CHECK(r.auc_per_class[std::size_t(c)] == doctest::Approx(std::stod(auc)).epsilon(1e-12));
    }
    double acc = 0;
    in >> acc;
    CHECK(r.accuracy == doctest::Approx(acc).epsilon(1e-12));
    CHECK(r.auc_macro == doctest::Approx((r.auc_per_class[0] + r.auc_per_class[1]) / 2));
    // Intervals: each label's DeLong interval is the one over its unmasked rows alone.
    const train::stats::scored sc{scores, k, {}, t};
    const auto iv = train::stats::analytic_intervals(sc);
    for (std::int64_t c = 0; c < 2; ++c) {
        std::vector<float> col;
        std::vector<char> pos;
        for (std::int64_t i = 0; i < n; ++i)
            if (!is_nan(t[std::size_t(i * k + c)])) col.push_back(scores[std::size_t(i * k + c)]), pos.push_back(t[std::size_t(i * k + c)] == 1.0f);
        const auto alone = train::stats::delong_interval(
            train::stats::delong(col, std::span<const bool>(reinterpret_cast<const bool*>(pos.data()), pos.size())));
        CHECK(iv.auc_per_class[std::size_t(c)].lo == doctest::Approx(alone.lo).epsilon(1e-12));
        CHECK(iv.auc_per_class[std::size_t(c)].hi == doctest::Approx(alone.hi).epsilon(1e-12));
    }
    CHECK(std::isnan(iv.auc_per_class[2].lo));
    // The bootstrap over the same samples weighs only the entries kept: its intervals hold the AUC.
    std::vector<std::int64_t> patients(static_cast<std::size_t>(n), 0);  // two samples per patient
    for (std::size_t i = 0; i < patients.size(); ++i) patients[i] = std::int64_t(i / 2);
    const auto boot = train::stats::bootstrap_intervals(sc, patients, {200, 1});
    for (std::int64_t c = 0; c < 2; ++c) {
        CHECK(boot.auc_per_class[std::size_t(c)].lo <= r.auc_per_class[std::size_t(c)]);
        CHECK(boot.auc_per_class[std::size_t(c)].hi >= r.auc_per_class[std::size_t(c)]);
    }
    CHECK(boot.accuracy.lo <= r.accuracy);
    CHECK(boot.accuracy.hi >= r.accuracy);
}

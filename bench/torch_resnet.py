"""The torchvision ResNets the bench scripts compare micle against, in one place: any
depth, the ImageNet stem (7x7 stride-2 conv1 and a 3x3 max pool, torchvision's) or the
small one (3x3 stride-1 conv1, no max pool), a channel base other than 64, any number of
input channels, and no classifier (fc is Identity). Weights get torchvision's init."""
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

BLOCKS = {"resnet18": (BasicBlock, [2, 2, 2, 2]), "resnet34": (BasicBlock, [3, 4, 6, 3]),
          "resnet50": (Bottleneck, [3, 4, 6, 3]), "resnet101": (Bottleneck, [3, 4, 23, 3]),
          "resnet152": (Bottleneck, [3, 8, 36, 3])}


def resnet(arch="resnet18", stem="imagenet", base=64, channels=3):
    block, layers = BLOCKS[arch]
    m = ResNet(block, layers)
    if stem == "imagenet" and base == 64 and channels == 3:
        m.fc = nn.Identity()
        return m  # torchvision's own, as built
    m.inplanes = base
    m.conv1 = nn.Conv2d(channels, base, 7, 2, 3, bias=False) if stem == "imagenet" else nn.Conv2d(channels, base, 3, 1, 1, bias=False)
    m.bn1 = nn.BatchNorm2d(base)
    if stem != "imagenet":
        m.maxpool = nn.Identity()
    m.layer1 = m._make_layer(block, base, layers[0])
    m.layer2 = m._make_layer(block, 2 * base, layers[1], stride=2)
    m.layer3 = m._make_layer(block, 4 * base, layers[2], stride=2)
    m.layer4 = m._make_layer(block, 8 * base, layers[3], stride=2)
    m.fc = nn.Identity()
    for mod in m.modules():
        if isinstance(mod, nn.Conv2d):
            nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(mod, nn.BatchNorm2d):
            nn.init.ones_(mod.weight)
            nn.init.zeros_(mod.bias)
    return m


def features(arch, base=64):
    """The backbone's feature width (what fc would take)."""
    block, _ = BLOCKS[arch]
    return 8 * base * block.expansion
